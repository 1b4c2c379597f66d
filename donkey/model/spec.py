"""The one table of exported graphs: tensor names, shapes and dtypes.

Used by the graph wrappers, the ONNX exporter, every runtime backend and the tests. A shape
entry is an int or the string "batch" (the one dynamic axis).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from donkey.model.config import ModelConfig
from donkey.model.errors import DonkeyError

BATCH = "batch"
GRAPH_NAMES = ("kp_detector", "dense_motion", "source_encoder", "generator")
KP_SOURCE = ("kp_source_mean", "kp_source_var")
KP_DRIVING = ("kp_driving_mean", "kp_driving_var")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    def matches(self, tensor: Tensor) -> str | None:
        """None when `tensor` fits, else the reason."""
        if tuple(tensor.shape[1:]) != tuple(self.shape[1:]) or tensor.dim() != len(self.shape):
            expected = "x".join(str(s) for s in self.shape)
            got = "x".join(str(s) for s in tensor.shape)
            return f"{self.name}: expected shape {expected}, got {got}"
        return None


@dataclass(frozen=True)
class GraphSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def check_inputs(self, tensors: dict[str, Tensor]) -> None:
        """Raises DonkeyError for a missing name, a wrong shape or mixed batch sizes."""
        missing = [n for n in self.input_names if n not in tensors]
        if missing:
            raise DonkeyError(f"graph {self.name}: missing inputs {', '.join(missing)}")
        batches = set()
        for spec in self.inputs:
            problem = spec.matches(tensors[spec.name])
            if problem:
                raise DonkeyError(f"graph {self.name}: {problem}")
            batches.add(tensors[spec.name].shape[0])
        if len(batches) > 1:
            raise DonkeyError(
                f"graph {self.name}: inputs have different batch sizes {sorted(batches)}"
            )


def skip_names(config: ModelConfig) -> list[str]:
    return [f"skip_{i + 1}" for i in range(config.generator.num_blocks)]


def _kp(names: tuple[str, str], k: int) -> tuple[TensorSpec, TensorSpec]:
    return TensorSpec(names[0], (BATCH, k, 2)), TensorSpec(names[1], (BATCH, k, 2, 2))


def skip_shapes(config: ModelConfig) -> list[tuple[int, int]]:
    """(channels, side) of the source encoder's skips, deepest last."""
    g = config.generator
    shapes = []
    for i in range(g.num_blocks):
        channels = min(g.max_features, g.block_expansion * 2 ** (i + 1))
        shapes.append((channels, config.image_size // 2 ** (i + 1)))
    return shapes


def graph_specs(config: ModelConfig) -> dict[str, GraphSpec]:
    """Spec of every exported graph for `config`, keyed by graph name."""
    c, s, k, m = config.num_channels, config.image_size, config.num_kp, config.motion_size
    image = (BATCH, c, s, s)
    skips = tuple(
        TensorSpec(name, (BATCH, ch, side, side))
        for name, (ch, side) in zip(skip_names(config), skip_shapes(config))
    )
    grid = TensorSpec("grid", (BATCH, m, m, 2))
    source = TensorSpec("source", image)
    kp_pair = _kp(KP_SOURCE, k) + _kp(KP_DRIVING, k)
    specs = [
        GraphSpec("kp_detector", (TensorSpec("image", image),), _kp(("kp_mean", "kp_var"), k)),
        GraphSpec("dense_motion", (source, *kp_pair), (grid,)),
        GraphSpec("source_encoder", (source,), skips),
        GraphSpec(
            "generator", (source, *skips, grid, *kp_pair), (TensorSpec("prediction", image),)
        ),
    ]
    return {spec.name: spec for spec in specs}


def example_inputs(spec: GraphSpec, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Valid inputs for a graph: images in [0, 1], keypoints in [-1, 1], SPD covariances."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for t in spec.inputs:
        shape = (batch, *t.shape[1:])
        if t.name.endswith("_var"):
            a = torch.rand(shape, generator=gen) * 0.02
            out[t.name] = a @ a.transpose(-1, -2) + 0.01 * torch.eye(2)
        elif t.name.endswith("_mean") or t.name == "grid":
            out[t.name] = torch.rand(shape, generator=gen) * 1.6 - 0.8
        else:
            out[t.name] = torch.rand(shape, generator=gen)
    return out
