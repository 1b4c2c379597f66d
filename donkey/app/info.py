"""`donkey info`: a model's networks (parameters, multiply-accumulates per frame) and, for a
checkpoint, how it was trained."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from donkey.app.process import start_torch
from donkey.model.errors import DonkeyError

if TYPE_CHECKING:
    from donkey.model.config import ModelConfig

# What runs per output frame at inference (`generator` excludes the dense motion module).
INFERENCE = ("kp_detector", "dense_motion", "generator")


@dataclass(frozen=True)
class ModelInfo:
    label: str  # the config or model path as given
    image_size: int
    num_kp: int
    stats: dict[str, dict[str, float]]  # network -> {"params": count, "gmac": per frame}
    training: dict[str, Any] | None  # provenance.training_summary, for a checkpoint

    @property
    def inference_gmac(self) -> float:
        return sum(self.stats[k]["gmac"] for k in INFERENCE)

    def as_json(self) -> dict[str, Any]:
        """`donkey info --json`: GMAC rounded to 4 places."""
        payload: dict[str, Any] = {
            k: {"params": int(v["params"]), "gmac": round(v["gmac"], 4)}
            for k, v in self.stats.items()
        }
        payload["image_size"] = self.image_size
        payload["num_kp"] = self.num_kp
        payload["inference_gmac_per_frame"] = round(self.inference_gmac, 4)
        if self.training is not None:
            payload["training"] = self.training
        return payload

    def trained(self) -> str | None:
        """One line on the run that wrote the weights; None when unknown."""
        from donkey.model.provenance import describe_training

        return describe_training(self.training) if self.training is not None else None


def model_info(config: Path | None, model: str | None) -> ModelInfo:
    """Describes CONFIG's model, or that of --model (a checkpoint or an export folder; default:
    the bundled model). GMAC counts convolutions for one frame at the model's image size."""
    cfg, label, trained = _model_config(config, model)
    from donkey.model.complexity import model_complexity

    return ModelInfo(
        label=label,
        image_size=cfg.image_size,
        num_kp=cfg.num_kp,
        stats=model_complexity(cfg),
        training=trained,
    )


def _model_config(
    config: Path | None, model: str | None
) -> tuple[ModelConfig, str, dict[str, Any] | None]:
    if config is not None and model is not None:
        raise DonkeyError("give either CONFIG or --model, not both")
    start_torch()
    from donkey.artifacts.verify import verify_folder
    from donkey.model.checkpoint import load_checkpoint
    from donkey.model.config import load_config
    from donkey.model.provenance import training_summary
    from donkey.runtime.loader import model_kind, resolve_model

    if config is not None:
        return load_config(config).model, str(config), None
    path = resolve_model(model)
    if model_kind(path) == "checkpoint":
        ckpt = load_checkpoint(path)
        summary = training_summary(ckpt.model_config, ckpt.train_config, ckpt.training)
        return ckpt.model_config, str(path), summary
    return verify_folder(path).model_config, str(path), None


def bundled_configs() -> dict[str, str]:
    """The configs the package ships (`donkey configs`): name -> its one-line description."""
    from donkey.model.named_configs import bundled_config, config_names, description

    return {name: description(bundled_config(name)) for name in config_names()}


def bundled_config_text(name: str) -> str:
    """The YAML of a shipped config, named `small` or `small.yaml`."""
    from donkey.model.named_configs import bundled_config

    return bundled_config(name.removesuffix(".yaml")).read_text(encoding="utf-8")
