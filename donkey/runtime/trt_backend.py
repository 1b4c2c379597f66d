"""TensorRT backend: named tensors, set_input_shape / set_tensor_address / execute_async_v3 on a
dedicated CUDA stream, preallocated buffers per batch size, fresh output tensors per call.

Engines are tied to the TensorRT version and the GPU: the manifest says which, and a
mismatch is refused with "rebuild". A serialized engine can carry code (plugins), so only
engines from a `donkey export` folder whose manifest hash matches are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from donkey.artifacts.gpu import gpu_identity, import_tensorrt
from donkey.artifacts.manifest import Manifest
from donkey.model.errors import DonkeyError
from donkey.model.spec import GraphSpec, graph_specs
from donkey.runtime.backend import BaseBackend, LoadedGraphs, LoadRequest, register_engine

# TensorRT DataType member name -> torch dtype
TRT_DTYPES = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "INT8": torch.int8,
    "BOOL": torch.bool,
    "UINT8": torch.uint8,
}


def torch_dtype(trt_dtype) -> torch.dtype:
    name = getattr(trt_dtype, "name", str(trt_dtype).split(".")[-1])
    if name not in TRT_DTYPES:
        raise DonkeyError(f"engine tensor type {name} has no torch equivalent")
    return TRT_DTYPES[name]


def check_engine_identity(
    manifest: Manifest, trt_version: str, gpu: dict | None, folder: Path
) -> None:
    built = manifest.engine.tensorrt_version if manifest.engine else None
    if built != trt_version:
        raise DonkeyError(
            f"{folder}: engines were built with TensorRT {built}, this is {trt_version}; "
            f"rebuild with `donkey export --format trt`"
        )
    want = manifest.engine.gpu.compute_capability if manifest.engine else None
    have = (gpu or {}).get("compute_capability")
    if want != have:
        raise DonkeyError(
            f"{folder}: engines were built for a GPU of compute capability {want}, "
            f"this GPU is {have}; rebuild with `donkey export --format trt`"
        )


@dataclass
class _Buffers:
    inputs: dict[str, Tensor]
    outputs: dict[str, Tensor]
    graph: object = None  # torch.cuda.CUDAGraph once captured


class TrtBackend(BaseBackend):
    engine = "trt"

    def __init__(
        self, engine_path: Path, spec: GraphSpec, device: torch.device, cuda_graphs: bool = False
    ) -> None:
        super().__init__(spec)
        self.engine_path = Path(engine_path)
        self.device = device
        self.cuda_graphs = cuda_graphs and device.type == "cuda"
        self._buffers: dict[int, _Buffers] = {}

    def _activate(self) -> None:
        trt = import_tensorrt()
        self._trt = trt
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            raise DonkeyError(
                f"{self.engine_path}: TensorRT could not load this engine; rebuild it"
            )
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_input = {n: self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        got_in = sorted(n for n in names if is_input[n])
        got_out = sorted(n for n in names if not is_input[n])
        if got_in != sorted(self.spec.input_names) or got_out != sorted(self.spec.output_names):
            raise DonkeyError(
                f"{self.engine_path}: engine tensors {got_in} -> {got_out} do not match "
                f"graph {self.spec.name}; rebuild it"
            )
        self._dtypes = {n: torch_dtype(self._engine.get_tensor_dtype(n)) for n in names}
        first = self.spec.input_names[0]
        lo, _, hi = self._engine.get_tensor_profile_shape(first, 0)
        self.batch_range = (int(lo[0]), int(hi[0]))
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    def _allocate(self, batch: int) -> _Buffers:
        inputs = {
            t.name: torch.empty(
                (batch, *t.shape[1:]), dtype=self._dtypes[t.name], device=self.device
            )
            for t in self.spec.inputs
        }
        outputs = {
            t.name: torch.empty(
                (batch, *t.shape[1:]), dtype=self._dtypes[t.name], device=self.device
            )
            for t in self.spec.outputs
        }
        return _Buffers(inputs, outputs)

    def _enqueue(self, buffers: _Buffers) -> None:
        for name, tensor in buffers.inputs.items():
            self._context.set_input_shape(name, tuple(tensor.shape))
            self._context.set_tensor_address(name, tensor.data_ptr())
        for name, tensor in buffers.outputs.items():
            self._context.set_tensor_address(name, tensor.data_ptr())
        handle = self._stream.cuda_stream if self._stream is not None else 0
        if not self._context.execute_async_v3(handle):
            raise DonkeyError(f"{self.engine_path}: TensorRT execution failed")

    def _infer(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        batch = int(inputs[self.spec.input_names[0]].shape[0])
        lo, hi = self.batch_range
        if not lo <= batch <= hi:
            raise DonkeyError(
                f"batch {batch} is outside the engine's range {lo}..{hi}; "
                f"use --batch-size <= {hi} or rebuild with --max-batch"
            )
        buffers = self._buffers.get(batch)
        if buffers is None:
            buffers = self._buffers[batch] = self._allocate(batch)
        if self._stream is None:
            return self._run(buffers, inputs)
        current = torch.cuda.current_stream(self.device)
        self._stream.wait_stream(current)  # inputs were produced on the caller's stream
        with torch.cuda.stream(self._stream):
            result = self._run(buffers, inputs)
        current.wait_stream(self._stream)
        for tensor in result.values():
            tensor.record_stream(current)
        return result

    def _run(self, buffers: _Buffers, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        for name, buffer in buffers.inputs.items():
            buffer.copy_(inputs[name], non_blocking=True)
        if buffers.graph is not None:
            buffers.graph.replay()
        else:
            self._enqueue(buffers)
            if self.cuda_graphs:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=self._stream):
                    self._enqueue(buffers)
                buffers.graph = graph
        # Fresh tensors: the next call overwrites these buffers.
        return {
            name: out.float().clone() if out.dtype != torch.float32 else out.clone()
            for name, out in buffers.outputs.items()
        }


@register_engine("trt")
def load_trt_graphs(request: LoadRequest) -> LoadedGraphs:
    """Backends for a verified engine folder (a checkpoint or ONNX folder is built into engines
    by the caller first: donkey/cli/models.py)."""
    if request.device.type != "cuda":
        raise DonkeyError("--engine trt needs --device cuda (TensorRT runs on NVIDIA GPUs only)")
    trt = import_tensorrt()
    manifest = request.manifest
    if manifest is None or manifest.format != "trt":
        raise DonkeyError(
            f"{request.path}: --engine trt runs an engine folder; build one with "
            "`donkey export --format trt`"
        )
    path = request.path
    check_engine_identity(manifest, trt.__version__, gpu_identity(request.device.index or 0), path)
    specs = graph_specs(manifest.model_config)
    # Every engine was checked against its recorded sha256 by verify_folder (loader.py).
    graphs = {
        name: TrtBackend(
            path / entry.file, specs[name], request.device, request.options.cuda_graphs
        )
        for name, entry in manifest.graphs.items()
    }
    return LoadedGraphs(manifest.model_config, graphs, manifest.precision)
