"""OpenVINO backend (CPU): runs the same verified ONNX folders as ONNX Runtime, fp32 or int8.

Why a second CPU runtime: on a CPU without VNNI (AVX2 only), ONNX Runtime wraps every int8
convolution in layout Transposes and keeps Quantize/Dequantize nodes around them, so an int8
folder with every convolution quantized ran only 1.16x its fp32 graphs there, while OpenVINO
fuses the same QDQ graphs into int8 kernels and ran them 1.71x (benchmarks/README.md). OpenVINO
is optional (`pip install openvino`, or the `openvino` extra) and imported only here, lazily.

Each graph is compiled for the input shapes it meets (static shapes ran 8% faster than one
dynamic compilation; compiling takes about 0.3 s), keeping the last few, so a clip's full
batches and its last short one each compile once.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from donkey.artifacts.verify import read_verified
from donkey.core.engines import not_installed
from donkey.model.errors import DonkeyError
from donkey.model.spec import GraphSpec, graph_specs
from donkey.runtime.backend import BaseBackend, LoadedGraphs, LoadRequest, register_engine
from donkey.runtime.cpu_features import check_precision

COMPILED_SHAPES = 4  # per graph: a clip's full batches and its last short one, with room


def import_openvino() -> ModuleType:
    try:
        import openvino
    except ImportError:
        raise DonkeyError(f"--engine openvino: {not_installed('openvino')}") from None
    except Exception as exc:  # noqa: BLE001 - a broken install (missing shared library, ...)
        raise DonkeyError(
            f"--engine openvino: OpenVINO cannot be imported ({_first_line(exc)})"
        ) from None
    return openvino


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else type(exc).__name__


class OpenVinoBackend(BaseBackend):
    engine = "openvino"

    def __init__(
        self, path: Path, spec: GraphSpec, threads: int | None = None, sha256: str | None = None
    ) -> None:
        super().__init__(spec)
        self.path = Path(path)
        self.threads = threads
        self.sha256 = sha256
        self._core: Any = None
        self._model: Any = None  # parsed once; each input shape compiles a reshaped clone
        self._requests: OrderedDict[tuple, Any] = OrderedDict()

    def _open(self) -> None:
        ov = import_openvino()
        self._core = ov.Core()
        # The bytes hashed are the bytes run: the file cannot change after the folder's check.
        if self.sha256 is not None:
            data = read_verified(self.path, self.sha256)
        else:
            data = self.path.read_bytes()
        # Parsing now reports a file OpenVINO cannot read at load time, not at the first frame;
        # compiling waits for the shapes the caller runs.
        try:
            self._model = self._core.read_model(data)
        except Exception as exc:  # noqa: BLE001 - OpenVINO's errors name no file
            raise DonkeyError(
                f"{self.path}: OpenVINO cannot read it ({_first_line(exc)})"
            ) from None

    def _close(self) -> None:
        self._requests.clear()  # compiled models and their requests go with them
        self._model = None
        self._core = None

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "LATENCY",
            # fp32 graphs stay fp32: on CPUs with AVX512-BF16/AMX OpenVINO would otherwise run
            # them in bf16, which is not what the folder's parity check measured.
            "INFERENCE_PRECISION_HINT": "f32",
        }
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        return config

    def _request_for(self, shapes: dict[str, tuple]) -> Any:
        key = tuple(shapes[name] for name in self.spec.input_names)
        request = self._requests.get(key)
        if request is not None:
            self._requests.move_to_end(key)
            return request
        model = self._model.clone()
        try:
            model.reshape({name: list(shape) for name, shape in shapes.items()})
            compiled = self._core.compile_model(model, "CPU", self._config())
        except Exception as exc:  # noqa: BLE001 - OpenVINO's errors name no file
            raise DonkeyError(
                f"{self.path}: OpenVINO cannot load it ({_first_line(exc)})"
            ) from None
        request = compiled.create_infer_request()
        self._requests[key] = request
        while len(self._requests) > COMPILED_SHAPES:
            self._requests.popitem(last=False)
        return request

    def _infer(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        feeds = {
            n: inputs[n].detach().float().cpu().contiguous().numpy() for n in self.spec.input_names
        }
        request = self._request_for({n: a.shape for n, a in feeds.items()})
        # share_inputs: OpenVINO reads the arrays in place (they outlive this synchronous call)
        # instead of copying about 8 MB of expanded source features per generator batch.
        results = request.infer(feeds, share_inputs=True)
        by_name = {}
        for port, value in results.items():
            for name in port.get_names():
                by_name[name] = value
        # Copies: the request reuses its output buffers on the next call.
        return {
            n: torch.from_numpy(np.array(by_name[n], dtype=np.float32, copy=True))
            for n in self.spec.output_names
        }


@register_engine("openvino")
def load_openvino_graphs(request: LoadRequest) -> LoadedGraphs:
    """Backends for a verified fp32 or int8 ONNX folder, on the CPU (the device and the
    graphs' precisions were checked against the engine table: runtime/backend.py)."""
    manifest = request.folder
    import_openvino()  # now, not at the first frame
    if "int8" in manifest.precision.values():
        check_precision("int8", allow=request.options.allow_slow_precision)
    specs = graph_specs(manifest.model_config)
    threads = request.options.threads
    graphs = {
        name: OpenVinoBackend(request.path / entry.file, specs[name], threads, sha256=entry.sha256)
        for name, entry in manifest.graphs.items()
    }
    return LoadedGraphs(manifest.model_config, graphs, manifest.precision)
