"""PyTorch eager backend (CPU or CUDA; fp32, fp16 autocast on CUDA, bf16 autocast) over the graph
wrappers.

bf16 keeps the fp32 islands of the fp16 export (docs/architecture.md, "ONNX graph rules"):
the keypoint detector runs whole in fp32; inside autocast only convolutions (and matmuls) run
in bf16, so the gaussians, offsets and grids (element-wise maths on fp32 keypoints) stay fp32,
the models' own `.float()` keeps both softmaxes fp32, and autocast's CPU policy runs
grid_sample in fp32 (tests/runtime/test_cpu_precision.py checks each of these).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from donkey.model.errors import DonkeyError
from donkey.model.graphs import run_graph
from donkey.model.spec import GRAPH_NAMES, GraphSpec
from donkey.runtime.backend import BaseBackend, LoadedGraphs, LoadRequest, register_engine
from donkey.runtime.cpu_features import check_precision

# Graphs that never run in bf16 (the same as the fp16 export's fp32 graphs).
FP32_GRAPHS = ("kp_detector",)


class TorchBackend(BaseBackend):
    engine = "torch"

    def __init__(
        self, module: nn.Module, spec: GraphSpec, device: torch.device, precision: str = "fp32"
    ) -> None:
        super().__init__(spec)
        self.module = module
        self.device = device
        self.precision = precision

    def _open(self) -> None:
        self.module.to(self.device).eval()

    def _close(self) -> None:
        # The weights are this backend's own (no file to reload them from): a GPU's copy goes
        # back to the host, freeing the device memory; on the CPU there is nothing to free.
        if self.device.type != "cpu":
            self.module.to("cpu")

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _infer(self, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
        moved = {k: v.to(self.device, non_blocking=True) for k, v in inputs.items()}
        with torch.inference_mode(), self._autocast():
            out = run_graph(self.module, self.spec, moved)
        return {k: v.float() for k, v in out.items()}


@register_engine("torch")
def load_torch_graphs(request: LoadRequest) -> LoadedGraphs:
    from donkey.model.checkpoint import build_networks, load_checkpoint
    from donkey.model.graphs import build_graphs

    # The kind of model, the device and the precision were checked against the engine table
    # (runtime/backend.py load_graphs); fp16 autocast exists on CUDA only.
    if request.precision == "fp16" and request.device.type != "cuda":
        raise DonkeyError(
            "--precision fp16 with --engine torch needs --device cuda (on a CPU: bf16)"
        )
    if request.precision == "bf16" and request.device.type == "cpu":
        check_precision("bf16", allow=request.options.allow_slow_precision)
    networks = build_networks(load_checkpoint(request.path), request.device)
    # CUDA fp16 autocast keeps its earlier behaviour (every graph); bf16 keeps the islands.
    islands = FP32_GRAPHS if request.precision == "bf16" else ()
    precision = {name: "fp32" if name in islands else request.precision for name in GRAPH_NAMES}
    graphs = {
        name: TorchBackend(module, spec, request.device, precision[name])
        for name, (module, spec) in build_graphs(networks).items()
    }
    return LoadedGraphs(networks.config, graphs, precision)
