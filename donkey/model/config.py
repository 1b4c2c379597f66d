"""Model and training configuration: one dataclass per network, YAML only as an input format."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from donkey.model.errors import ConfigError, brief


class _Loader(yaml.SafeLoader):
    """YAML 1.1 (PyYAML's) reads `1e-4` as a string; users write it as a number, as in YAML 1.2."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)


SEED_MAX = 2**63 - 1  # torch.manual_seed takes 64-bit seeds


def _int_in(prefix: str, name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"{prefix}{name} must be an integer in [{low}, {high}], got {brief(value)}"
        )


def _num_in(
    prefix: str, name: str, value: float, low: float, high: float, open_low: bool = False
) -> None:
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > low if open_low else value >= low)
        and value <= high
    )
    if not ok:
        bracket = "(" if open_low else "["
        raise ConfigError(
            f"{prefix}{name} must be a number in {bracket}{low}, {high}], got {brief(value)}"
        )


# Upper bounds keep a config (or a 1 KB checkpoint's config) from asking for gigabytes: the
# paper-size model is far inside them, and the total is also held to MAX_PARAMETERS.
MAX_WIDTH = 2048
MAX_BLOCKS = 8


def _check_widths(prefix: str, block_expansion: int, max_features: int, num_blocks: int) -> None:
    _int_in(prefix, "block_expansion", block_expansion, 1, MAX_WIDTH)
    _int_in(prefix, "max_features", max_features, 1, MAX_WIDTH)
    _int_in(prefix, "num_blocks", num_blocks, 1, MAX_BLOCKS)


@dataclass
class KeypointDetectorConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    temperature: float = 0.1
    scale_factor: float = 0.5
    clip_variance: float = 1e-3

    def __post_init__(self) -> None:
        p = "model.kp_detector."
        _check_widths(p, self.block_expansion, self.max_features, self.num_blocks)
        _num_in(p, "temperature", self.temperature, 0.0, 100.0, open_low=True)
        _num_in(p, "scale_factor", self.scale_factor, 0.0, 1.0, open_low=True)
        _num_in(p, "clip_variance", self.clip_variance, 0.0, 1.0)


@dataclass
class DenseMotionConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    num_group_blocks: int = 2
    scale_factor: float = 0.5
    bg_init: float = 2.0
    attention: bool = False  # CBAM (with ECA) between the hourglass decoder's up blocks

    def __post_init__(self) -> None:
        p = "model.dense_motion."
        _check_widths(p, self.block_expansion, self.max_features, self.num_blocks)
        _int_in(p, "num_group_blocks", self.num_group_blocks, 0, 16)
        _num_in(p, "scale_factor", self.scale_factor, 0.0, 1.0, open_low=True)
        _num_in(p, "bg_init", self.bg_init, -100.0, 100.0)


@dataclass
class GeneratorConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 6
    num_refinement_blocks: int = 4
    embedding_scale: float = 0.5
    attention: bool = False  # CBAM (with ECA) between the decoder's up blocks

    def __post_init__(self) -> None:
        p = "model.generator."
        _check_widths(p, self.block_expansion, self.max_features, self.num_blocks)
        _int_in(p, "num_refinement_blocks", self.num_refinement_blocks, 0, 32)
        _num_in(p, "embedding_scale", self.embedding_scale, 0.0, 1.0, open_low=True)


@dataclass
class DiscriminatorConfig:
    block_expansion: int = 32
    max_features: int = 256
    num_blocks: int = 4
    attention: bool = False  # BAM (with ECA) between consecutive down blocks

    def __post_init__(self) -> None:
        _check_widths(
            "model.discriminator.", self.block_expansion, self.max_features, self.num_blocks
        )


@dataclass
class ModelConfig:
    image_size: int = 128
    num_channels: int = 3
    num_kp: int = 10
    heatmap_norm: float = 100.0  # gaussians are divided by this where they are network inputs
    kp_detector: KeypointDetectorConfig = field(default_factory=KeypointDetectorConfig)
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)

    def __post_init__(self) -> None:
        p = "model."
        _int_in(p, "image_size", self.image_size, 16, 512)
        if self.num_channels != 3:
            raise ConfigError(f"model.num_channels must be 3 (RGB), got {brief(self.num_channels)}")
        _int_in(p, "num_kp", self.num_kp, 1, 128)
        _num_in(p, "heatmap_norm", self.heatmap_norm, 0.0, 1e6, open_low=True)
        s = self.image_size
        # The hourglasses halve their input num_blocks times and must meet their skips again.
        for name, part in (("kp_detector", self.kp_detector), ("dense_motion", self.dense_motion)):
            side = round(s * part.scale_factor)
            if side < 1 or side % 2**part.num_blocks:
                raise ConfigError(
                    f"model.{name}: image_size x scale_factor = {side} must be a multiple of "
                    f"2^num_blocks = {2**part.num_blocks}"
                )
        if s % 2**self.generator.num_blocks:
            raise ConfigError(
                f"model.image_size {s} must be a multiple of 2^generator.num_blocks "
                f"= {2**self.generator.num_blocks}"
            )
        if round(s * self.generator.embedding_scale) < 1:
            raise ConfigError("model.generator.embedding_scale leaves an empty embedding")
        if s < 2**self.discriminator.num_blocks:
            raise ConfigError(
                f"model.image_size {s} is smaller than 2^discriminator.num_blocks "
                f"= {2**self.discriminator.num_blocks}"
            )

    @property
    def motion_size(self) -> int:
        """Side of the dense-motion grid (pixels)."""
        return round(self.image_size * self.dense_motion.scale_factor)


@dataclass
class LossConfig:
    reconstruction: float = 10.0  # pixel L1
    feature_matching: list[float] = field(default_factory=lambda: [10.0, 10.0, 10.0, 1.0])
    feature_matching_scales: list[float] = field(default_factory=lambda: [1.0])
    perceptual: float = 0.0  # multi-scale VGG-19; needs --vgg19-weights when non-zero
    perceptual_scales: list[float] = field(default_factory=lambda: [1.0, 0.75, 0.5])
    perceptual_layers: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0, 1.0])
    gan: float = 1.0

    def __post_init__(self) -> None:
        p = "train.loss."
        for name in ("reconstruction", "perceptual", "gan"):
            _num_in(p, name, getattr(self, name), 0.0, 1e6)
        for name in ("feature_matching", "perceptual_layers"):
            for value in getattr(self, name):
                _num_in(p, name, value, 0.0, 1e6)
        for name in ("feature_matching_scales", "perceptual_scales"):
            values = getattr(self, name)
            if not values or len(values) > 8:
                raise ConfigError(f"{p}{name} must list 1 to 8 scales, got {brief(values)}")
            for value in values:
                _num_in(p, name, value, 0.0, 1.0, open_low=True)


@dataclass
class AugmentConfig:
    flip_time: float = 0.5
    flip_horizontal: float = 0.5
    scale_min: float = 0.9
    scale_max: float = 1.1
    hue: float = 0.1

    def __post_init__(self) -> None:
        p = "train.augment."
        _num_in(p, "flip_time", self.flip_time, 0.0, 1.0)
        _num_in(p, "flip_horizontal", self.flip_horizontal, 0.0, 1.0)
        _num_in(p, "scale_min", self.scale_min, 0.0, 4.0, open_low=True)
        _num_in(p, "scale_max", self.scale_max, self.scale_min, 4.0)
        _num_in(p, "hue", self.hue, 0.0, 0.5)


# train.freeze names -> the module each one keeps fixed (model/networks.py).
FREEZABLE = {"kp_detector": "kp_detector", "dense_motion": "generator.dense_motion_module"}

# train.qat_float names: graphs the int8 export can keep whole in fp32 (export/int8.py).
QAT_FLOATABLE = ("kp_detector",)


@dataclass
class TrainConfig:
    # "monkey": self-reconstruction on single videos; "dual": steps on GIF pairs only;
    # "mixed": every `pair_every`-th step on pairs, the others self-reconstruction on videos.
    mode: str = "monkey"
    pair_steps: str = "dual"  # a step on pairs: "dual" reconstruction or "self" (per video)
    pair_every: int = 2
    steps: int = 100_000
    batch_size: int = 8
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    lr_drop_at: float = 2 / 3  # fraction of `steps` after which every lr is multiplied by 0.1
    disc_keypoints: str = "ground_truth"  # or "driving"
    pair_repeats: int = 3  # times each pair is sampled per epoch (dual mode)
    seed: int = 0
    # Networks kept exactly as loaded (weights and batch-norm statistics): fine-tuning the
    # generator at a new image size with ["kp_detector", "dense_motion"] keeps the motion the
    # loaded model learned, since both networks see the same 32x32 input at either size.
    freeze: list[str] = field(default_factory=list)
    # Quantization-aware training (model/fake_quant.py): convolutions of the keypoint detector
    # and generator see int8 rounding, so `donkey export --int8` of the result may quantize all
    # of them (export/int8.py), the ones otherwise kept float included.
    qat: bool = False
    # Networks a QAT run leaves float: not rounded in training, fp32 in the int8 export. The
    # keypoint detector is the usual one: its heatmap logits are divided by a temperature of
    # 0.1, so int8 rounding moves keypoints far past what the export's check allows.
    qat_float: list[str] = field(default_factory=list)
    # Decay of an exponential moving average of the keypoint detector's and generator's weights
    # (0: none). The run folder then also holds ema.safetensors, the averaged weights (README,
    # "Training"; docs/default-model.md, "Weight averaging", for what averaging measured).
    ema: float = 0.0
    num_workers: int = 0
    channels_last: bool = True  # measured 10% faster training steps on 2 CPU cores
    checkpoint_every: int = 500
    log_every: int = 10
    sample_every: int = 500
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        p = "train."
        _int_in(p, "steps", self.steps, 1, 10**9)
        _int_in(p, "batch_size", self.batch_size, 1, 4096)
        _num_in(p, "lr", self.lr, 0.0, 1.0, open_low=True)
        if len(self.betas) != 2:
            raise ConfigError(f"train.betas must be two numbers, got {brief(self.betas)}")
        for beta in self.betas:
            _num_in(p, "betas", beta, 0.0, 0.999999)
        _num_in(p, "lr_drop_at", self.lr_drop_at, 0.0, 1.0)
        _num_in(p, "ema", self.ema, 0.0, 0.99999)
        _int_in(p, "pair_repeats", self.pair_repeats, 1, 10_000)
        _int_in(p, "pair_every", self.pair_every, 1, 10_000)
        _int_in(p, "seed", self.seed, 0, SEED_MAX)
        _int_in(p, "num_workers", self.num_workers, 0, 256)
        for name in ("checkpoint_every", "log_every", "sample_every"):
            _int_in(p, name, getattr(self, name), 1, 10**9)
        bad = [name for name in self.freeze if name not in FREEZABLE]
        if bad or len(set(self.freeze)) != len(self.freeze):
            raise ConfigError(
                f"train.freeze takes distinct names from {', '.join(FREEZABLE)}; got {brief(self.freeze)}"
            )
        if any(name not in QAT_FLOATABLE for name in self.qat_float) or len(
            set(self.qat_float)
        ) != len(self.qat_float):
            raise ConfigError(
                f"train.qat_float takes distinct names from {', '.join(QAT_FLOATABLE)}; "
                f"got {brief(self.qat_float)}"
            )
        if self.qat_float and not self.qat:
            raise ConfigError(
                "train.qat_float names networks to leave float in train.qat: set qat: true"
            )
        if self.mode not in ("monkey", "dual", "mixed"):
            raise ConfigError(
                f"train.mode must be 'monkey', 'dual' or 'mixed', got {brief(self.mode)}"
            )
        if self.pair_steps not in ("dual", "self"):
            raise ConfigError(
                f"train.pair_steps must be 'dual' or 'self', got {brief(self.pair_steps)}"
            )
        if self.disc_keypoints not in ("ground_truth", "driving"):
            raise ConfigError(
                f"train.disc_keypoints must be 'ground_truth' or 'driving', got {brief(self.disc_keypoints)}"
            )


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key '{dotted}'")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, dotted)
        else:
            kwargs[key] = _coerce(hint, value, dotted)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, dotted: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key '{dotted}' must be a list, got {brief(value)}")
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, dotted) for v in value]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{dotted}' must be true or false, got {brief(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{dotted}' must be an integer, got {brief(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{dotted}' must be a number, got {brief(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{dotted}' must be a string, got {brief(value)}")
        return value
    return value


def config_from_dict(data: dict[str, Any]) -> Config:
    """Builds a Config; unknown keys raise ConfigError naming the dotted key."""
    return _build(Config, data, "")


def model_config_from_dict(data: dict[str, Any]) -> ModelConfig:
    return _build(ModelConfig, data, "model")


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Applies `a.b.c=value` overrides (value parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {brief(item)}")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: '{part}' is not a section")
        try:
            node[parts[-1]] = _yaml(raw)
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(f"--set {key}: {brief(raw)} is not a YAML value ({first})") from None
    return data


MAX_CONFIG_BYTES = 1_000_000  # a config is a few kB; this bounds what a wrong path costs
MODEL_SUFFIXES = (".ckpt", ".safetensors", ".onnx", ".engine", ".pt", ".pth")


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Reads a YAML config (a file, or the name of one the package ships: `small`);
    `overrides` are `key=value` strings applied before validation."""
    from donkey.model.named_configs import resolve_config

    path = resolve_config(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    hint = "; for a model use --model" if path.suffix.lower() in MODEL_SUFFIXES else ""
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: not a YAML config (over {MAX_CONFIG_BYTES // 1000} kB{hint})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML config (binary, not UTF-8 text{hint})") from None
    try:
        data = _yaml(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    apply_overrides(data, overrides or [])
    try:
        config = config_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config


def config_json(config: Any) -> str:
    return json.dumps(config_to_dict(config), sort_keys=True)
