"""ONNX Runtime backend: providers chosen, then verified; IO binding with device tensors on GPU."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import Tensor

from donkey.artifacts.verify import read_verified
from donkey.core.engines import not_installed
from donkey.model.errors import DonkeyError
from donkey.model.spec import GraphSpec, graph_specs
from donkey.runtime.backend import BaseBackend, LoadedGraphs, LoadRequest, register_engine
from donkey.runtime.cpu_features import check_precision

PROVIDER_NAMES = {
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}

# Spinning: four sessions and PyTorch's motion code take turns on the same cores, and a pool
# that spins after its run starves the next one (batch 1 on 2 cores: 21 -> 54 frames/s).
# Denormals: gaussian heatmaps and softmax masks hold values below 1e-38 whose products take
# the CPU's slow microcode path (generator at batch 8: 74 -> 46 ms); flushing them changes
# outputs by less than 1e-37.
CPU_SESSION_CONFIG = {
    "session.intra_op.allow_spinning": "0",
    "session.set_denormal_as_zero": "1",
}


def import_onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError:
        raise DonkeyError(not_installed("ort")) from None
    return onnxruntime


def default_providers(device: torch.device) -> list[str]:
    if device.type == "cuda":
        return ["cuda", "cpu"]
    return ["cpu"]


class OrtBackend(BaseBackend):
    engine = "ort"

    def __init__(
        self,
        path: Path,
        spec: GraphSpec,
        device: torch.device,
        providers: list[str] | None = None,
        threads: int | None = None,
        sha256: str | None = None,
    ) -> None:
        super().__init__(spec)
        self.path = Path(path)
        self.device = device
        self.requested = list(providers or default_providers(device))
        self.threads = threads
        self.sha256 = sha256
        self.session = None
        self.providers: list[str] = []
        self.on_gpu = False

    def _open(self) -> None:
        ort = import_onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        for key, value in CPU_SESSION_CONFIG.items():
            options.add_session_config_entry(key, value)
        if self.threads:
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
        available = set(ort.get_available_providers())
        wanted = []
        for short in self.requested:
            name = PROVIDER_NAMES.get(short, short)
            if name not in available:
                continue
            if name == "CUDAExecutionProvider":
                wanted.append((name, {"device_id": self.device.index or 0}))
            else:
                wanted.append(name)
        if not wanted:
            raise DonkeyError(f"ONNX Runtime offers none of the providers {self.requested} here")
        # The bytes hashed are the bytes run: the file cannot change after the folder's check.
        source = str(self.path) if self.sha256 is None else read_verified(self.path, self.sha256)
        try:
            self.session = ort.InferenceSession(source, options, providers=wanted)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors name no file
            first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise DonkeyError(f"{self.path}: ONNX Runtime cannot load it ({first})") from None
        # A CUDA/TensorRT provider that fails to load falls back to CPU silently: check.
        self.providers = self.session.get_providers()
        first = wanted[0][0] if isinstance(wanted[0], tuple) else wanted[0]
        if self.providers[0] != first:
            warnings.warn(
                f"{self.path.name}: ONNX Runtime asked for {first} but runs on {self.providers[0]}",
                RuntimeWarning,
                stacklevel=2,
            )
        self.on_gpu = self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")

    def _close(self) -> None:
        self.session = None  # ONNX Runtime frees a session (and its device memory) with it
        self.providers = []
        self.on_gpu = False

    def _infer(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.on_gpu and self.device.type == "cuda":
            return self._infer_bound(inputs)
        feeds = {
            n: inputs[n].detach().float().cpu().contiguous().numpy() for n in self.spec.input_names
        }
        outputs = self.session.run(self.spec.output_names, feeds)
        return {
            n: torch.from_numpy(np.asarray(o, dtype=np.float32))
            for n, o in zip(self.spec.output_names, outputs)
        }

    def _infer_bound(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        """IO binding: ONNX Runtime reads and writes the torch CUDA tensors in place."""
        binding = self.session.io_binding()
        index = self.device.index or 0
        kept = []
        for name in self.spec.input_names:
            t = inputs[name].to(self.device, torch.float32).contiguous()
            kept.append(t)
            binding.bind_input(name, "cuda", index, np.float32, tuple(t.shape), t.data_ptr())
        batch = kept[0].shape[0]
        outputs = {}
        for t in self.spec.outputs:
            out = torch.empty((batch, *t.shape[1:]), dtype=torch.float32, device=self.device)
            binding.bind_output(t.name, "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
            outputs[t.name] = out
        torch.cuda.current_stream(self.device).synchronize()
        self.session.run_with_iobinding(binding)
        return outputs


@register_engine("ort")
def load_ort_graphs(request: LoadRequest) -> LoadedGraphs:
    """Backends for a verified ONNX folder (checkpoints are exported first, by the caller)."""
    manifest = request.folder
    specs = graph_specs(manifest.model_config)
    options = request.options
    if "int8" in manifest.precision.values() and request.device.type == "cpu":
        check_precision("int8", allow=options.allow_slow_precision)
        quantization = manifest.quantization
        if quantization is not None and quantization.outputs == "float":
            # ONNX Runtime fuses int8 convolutions only where their outputs are rounded too.
            warnings.warn(
                f"{request.path}: ONNX Runtime runs these int8 graphs at about fp32 speed "
                "(their convolutions output float); --engine openvino runs them as int8",
                RuntimeWarning,
                stacklevel=2,
            )
    graphs = {
        name: OrtBackend(
            request.path / entry.file,
            specs[name],
            request.device,
            list(options.ort_providers) if options.ort_providers else None,
            options.threads,
            sha256=entry.sha256,
        )
        for name, entry in manifest.graphs.items()
    }
    return LoadedGraphs(manifest.model_config, graphs, manifest.precision)
