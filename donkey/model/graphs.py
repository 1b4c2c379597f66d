"""The four inference graphs as modules with flat, named tensor inputs and outputs.

Inference always runs through these wrappers, so the ONNX exporter traces exactly what the
runtime runs. Positional arguments and outputs follow the order of `donkey.model.spec`.
"""

from __future__ import annotations

from torch import Tensor, nn

from donkey.model.networks import Networks
from donkey.model.spec import GraphSpec, graph_specs


class KeypointGraph(nn.Module):
    def __init__(self, networks: Networks) -> None:
        super().__init__()
        self.kp_detector = networks.kp_detector

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        return self.kp_detector(image)


class DenseMotionGraph(nn.Module):
    def __init__(self, networks: Networks) -> None:
        super().__init__()
        self.dense_motion = networks.generator.dense_motion_module

    def forward(
        self, source: Tensor, src_mean: Tensor, src_var: Tensor, drv_mean: Tensor, drv_var: Tensor
    ) -> Tensor:
        return self.dense_motion(source, src_mean, src_var, drv_mean, drv_var)


class SourceEncoderGraph(nn.Module):
    def __init__(self, networks: Networks) -> None:
        super().__init__()
        self.generator = networks.generator

    def forward(self, source: Tensor) -> tuple[Tensor, ...]:
        return tuple(self.generator.encode(source))


class GeneratorGraph(nn.Module):
    """Inputs: source, skip_1..skip_N, grid, source keypoints, driving keypoints."""

    def __init__(self, networks: Networks) -> None:
        super().__init__()
        self.generator = networks.generator
        self.num_skips = networks.config.generator.num_blocks

    def forward(self, source: Tensor, *rest: Tensor) -> Tensor:
        skips = list(rest[: self.num_skips])
        grid, src_mean, src_var, drv_mean, drv_var = rest[self.num_skips :]
        return self.generator.decode(source, skips, grid, src_mean, src_var, drv_mean, drv_var)


_WRAPPERS = {
    "kp_detector": KeypointGraph,
    "dense_motion": DenseMotionGraph,
    "source_encoder": SourceEncoderGraph,
    "generator": GeneratorGraph,
}


def build_graphs(networks: Networks) -> dict[str, tuple[nn.Module, GraphSpec]]:
    """Each graph's wrapper module (sharing the networks' weights) with its spec."""
    specs = graph_specs(networks.config)
    return {name: (wrapper(networks), specs[name]) for name, wrapper in _WRAPPERS.items()}


def run_graph(module: nn.Module, spec: GraphSpec, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
    """Calls a wrapper with named inputs and names its outputs by the spec."""
    out = module(*(inputs[name] for name in spec.input_names))
    if isinstance(out, Tensor):
        out = (out,)
    return dict(zip(spec.output_names, out))
