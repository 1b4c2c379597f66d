"""PyTorch eager backend (CPU or CUDA, fp32 or fp16 autocast) over the graph wrappers."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from donkey.model.errors import DonkeyError
from donkey.model.graphs import run_graph
from donkey.model.spec import GraphSpec
from donkey.runtime.backend import BaseBackend, LoadedGraphs, LoadRequest, register_engine


class TorchBackend(BaseBackend):
    engine = "torch"

    def __init__(
        self, module: nn.Module, spec: GraphSpec, device: torch.device, precision: str = "fp32"
    ) -> None:
        super().__init__(spec)
        self.module = module
        self.device = device
        self.precision = precision

    def _activate(self) -> None:
        self.module.to(self.device).eval()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp16" and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
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

    if request.kind != "checkpoint":
        raise DonkeyError(
            f"{request.path}: --engine torch needs a checkpoint, not an {request.kind} folder"
        )
    if request.precision == "fp16" and request.device.type != "cuda":
        raise DonkeyError("--precision fp16 with --engine torch needs --device cuda")
    networks = build_networks(load_checkpoint(request.path), request.device)
    graphs = {
        name: TorchBackend(module, spec, request.device, request.precision)
        for name, (module, spec) in build_graphs(networks).items()
    }
    return LoadedGraphs(networks.config, graphs, {name: request.precision for name in graphs})
