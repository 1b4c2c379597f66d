"""TensorRT backend: named tensors, set_input_shape / set_tensor_address / execute_async_v3 on a
dedicated CUDA stream, preallocated buffers per batch size (outputs sized by the engine's
`get_tensor_shape` after `set_input_shape`), fresh output tensors per call.

CUDA graphs (`cuda_graphs=True`): a captured graph replays its kernel launches with the
shapes, buffer addresses and execution-context memory of the moment of capture, so every
captured batch size gets an execution context of its own (one context's activation memory
per batch size seen) that no other batch size touches. A capture that fails is reported with
its first error and that batch size runs without a graph.

Engines are tied to the TensorRT version and the GPU model (name and compute capability):
the manifest says which, and a mismatch is refused with "rebuild". A serialized engine can
carry code (plugins), so only engines from a `donkey export` folder whose manifest hash
matches are loaded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from donkey.artifacts.gpu import device_key, gpu_identity, import_tensorrt
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
    built_on = manifest.engine.gpu if manifest.engine else None
    want = (
        {"name": built_on.name, "compute_capability": built_on.compute_capability}
        if built_on
        else {}
    )
    have = gpu or {}
    if device_key(want) != device_key(have):
        raise DonkeyError(
            f"{folder}: engines were built for {device_key(want)}, this GPU is "
            f"{device_key(have)}; rebuild with `donkey export --format trt`"
        )


@dataclass
class _Buffers:
    context: object  # the execution context these buffers are bound to
    inputs: dict[str, Tensor]
    outputs: dict[str, Tensor]
    graph: object = None  # torch.cuda.CUDAGraph once captured
    graph_failed: bool = False


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
        self._engine = self._context = self._runtime = self._stream = None

    def _open(self) -> None:
        trt = import_tensorrt()
        self._trt = trt
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if self._engine is None:
            raise DonkeyError(
                f"{self.engine_path}: TensorRT could not load this engine; rebuild it"
            )
        # With CUDA graphs every batch size gets its own context (see _allocate) and a shared
        # one would only hold memory.
        self._context = None if self.cuda_graphs else self._engine.create_execution_context()
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
        ranges = []
        for t in self.spec.inputs:
            lo, _, hi = (
                tuple(int(d) for d in s) for s in self._engine.get_tensor_profile_shape(t.name, 0)
            )
            rest = tuple(int(d) for d in t.shape[1:])
            if lo[1:] != rest or hi[1:] != rest:
                raise DonkeyError(
                    f"{self.engine_path}: engine input {t.name} takes {lo} .. {hi}, graph "
                    f"{self.spec.name} needs (batch, {', '.join(map(str, rest))}); rebuild it"
                )
            ranges.append((lo[0], hi[0]))
        self.batch_range = (max(r[0] for r in ranges), min(r[1] for r in ranges))
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    def _close(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()  # nothing queued may still write into the buffers
        # Graphs and contexts before the engine they came from, the engine before its runtime.
        self._buffers.clear()
        self._context = None
        self._engine = None
        self._runtime = None
        self._stream = None

    def _set_shapes(self, context, batch: int) -> None:
        for t in self.spec.inputs:
            shape = (batch, *(int(d) for d in t.shape[1:]))
            if not context.set_input_shape(t.name, shape):
                raise DonkeyError(
                    f"{self.engine_path}: TensorRT rejected input shape {shape} for {t.name}; "
                    f"rebuild the engine for this model and batch range"
                )

    def _allocate(self, batch: int) -> _Buffers:
        context = self._context
        if self.cuda_graphs:  # a graph keeps the context it was captured on: one per batch size
            context = self._engine.create_execution_context()
        if context is None:
            raise DonkeyError(f"{self.engine_path}: TensorRT could not create an execution context")
        self._set_shapes(context, batch)
        inputs = {
            t.name: torch.empty(
                (batch, *t.shape[1:]), dtype=self._dtypes[t.name], device=self.device
            )
            for t in self.spec.inputs
        }
        outputs = {}
        for t in self.spec.outputs:
            # The engine decides what it writes; a spec that disagrees must not size the buffer.
            shape = tuple(int(d) for d in context.get_tensor_shape(t.name))
            expected = (batch, *(int(d) for d in t.shape[1:]))
            if shape != expected:
                raise DonkeyError(
                    f"{self.engine_path}: engine output {t.name} has shape {shape} at batch "
                    f"{batch}, graph {self.spec.name} expects {expected}; rebuild it"
                )
            outputs[t.name] = torch.empty(shape, dtype=self._dtypes[t.name], device=self.device)
        return _Buffers(context, inputs, outputs)

    def _bind(self, buffers: _Buffers, batch: int) -> None:
        context = buffers.context
        if context is self._context:  # shared: another batch size may have set other shapes
            self._set_shapes(context, batch)
        for name, tensor in (buffers.inputs | buffers.outputs).items():
            if not context.set_tensor_address(name, tensor.data_ptr()):
                raise DonkeyError(f"{self.engine_path}: TensorRT refused the address of {name}")

    def _enqueue(self, buffers: _Buffers) -> bool:
        handle = self._stream.cuda_stream if self._stream is not None else 0
        return bool(buffers.context.execute_async_v3(handle))

    def _capture(self, buffers: _Buffers, batch: int):
        """A CUDA graph of one enqueue, or None (with a warning naming the first error)."""
        graph = torch.cuda.CUDAGraph()
        failure = None
        try:
            with torch.cuda.graph(graph, stream=self._stream):
                if not self._enqueue(buffers):
                    failure = "execute_async_v3 returned False during capture"
        except Exception as exc:  # noqa: BLE001 - ending a failed capture raises its own error
            failure = failure or f"{type(exc).__name__}: {exc}"
        if failure is None:
            return graph
        warnings.warn(
            f"{self.engine_path.name}: CUDA graph capture at batch {batch} failed ({failure}); "
            f"batch {batch} runs without a graph",
            RuntimeWarning,
            stacklevel=2,
        )
        return None

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
            return self._run(buffers, inputs, batch)
        current = torch.cuda.current_stream(self.device)
        self._stream.wait_stream(current)  # inputs were produced on the caller's stream
        with torch.cuda.stream(self._stream):
            result = self._run(buffers, inputs, batch)
        current.wait_stream(self._stream)
        for tensor in result.values():
            tensor.record_stream(current)
        return result

    def _run(self, buffers: _Buffers, inputs: dict[str, Tensor], batch: int) -> dict[str, Tensor]:
        for name, buffer in buffers.inputs.items():
            buffer.copy_(inputs[name], non_blocking=True)
        if buffers.graph is not None:
            buffers.graph.replay()
        else:
            self._bind(buffers, batch)
            if not self._enqueue(buffers):
                raise DonkeyError(f"{self.engine_path}: TensorRT execution failed")
            # Capture only records: this call's outputs come from the run above.
            if self.cuda_graphs and not buffers.graph_failed:
                buffers.graph = self._capture(buffers, batch)
                buffers.graph_failed = buffers.graph is None
        # Fresh tensors: the next call overwrites these buffers.
        return {
            name: out.float().clone() if out.dtype != torch.float32 else out.clone()
            for name, out in buffers.outputs.items()
        }


@register_engine("trt")
def load_trt_graphs(request: LoadRequest) -> LoadedGraphs:
    """Backends for a verified engine folder on a CUDA device (checked against the engine table:
    runtime/backend.py). A checkpoint or ONNX folder is built into engines by the caller first
    (donkey/app/models.py)."""
    trt = import_tensorrt()
    manifest = request.folder
    path = request.path
    check_engine_identity(manifest, trt.__version__, gpu_identity(request.device.index), path)
    specs = graph_specs(manifest.model_config)
    # Every engine was checked against its recorded sha256 by verify_folder (loader.py).
    graphs = {
        name: TrtBackend(
            path / entry.file, specs[name], request.device, request.options.cuda_graphs
        )
        for name, entry in manifest.graphs.items()
    }
    return LoadedGraphs(manifest.model_config, graphs, manifest.precision)
