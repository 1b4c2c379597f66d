"""How a checkpoint was trained, in the few words `donkey info` shows."""

from __future__ import annotations

from typing import Any

from donkey.model.config import ModelConfig


def saved_step(train_config: dict[str, Any] | None, training: dict[str, Any] | None) -> Any:
    """The step weights were saved at: a training checkpoint's own, or the one a shipped file
    records (scripts/ship_model.py); None when neither says."""
    return (training or {}).get("step", (train_config or {}).get("shipped_from_step"))


def training_summary(
    model: ModelConfig, train_config: dict[str, Any] | None, training: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Mode, steps, attention and losses of the run that wrote the weights; None if unknown.

    `steps` is the step the weights were saved at: a training checkpoint's own step, or the
    step a shipped file was made from (scripts/ship_model.py records it).
    """
    if not train_config:
        return None
    mode = train_config.get("mode", "monkey")
    steps = saved_step(train_config, training)
    loss = train_config.get("loss") or {}
    summary: dict[str, Any] = {
        "mode": mode,
        "steps": steps,
        "attention": {
            "dense_motion": model.dense_motion.attention,
            "generator": model.generator.attention,
            "discriminator": model.discriminator.attention,
        },
        "feature_matching_scales": loss.get("feature_matching_scales"),
        "perceptual": loss.get("perceptual", 0) > 0,
    }
    if train_config.get("freeze"):
        summary["frozen"] = list(train_config["freeze"])
    if train_config.get("qat") is True:
        summary["quantization_aware"] = True
        kept = train_config.get("qat_float")
        if isinstance(kept, list) and kept and all(isinstance(n, str) for n in kept):
            summary["quantization_float"] = list(kept)
    origins = train_config.get("averaged_from")
    if isinstance(origins, list) and origins and all(isinstance(o, dict) for o in origins):
        summary["averaged_steps"] = [o.get("step") for o in origins]
    average = train_config.get("weight_average")
    if isinstance(average, (int, float)) and not isinstance(average, bool) and average > 0:
        summary["weight_average"] = float(average)
    if mode != "monkey":
        summary["pair_steps"] = train_config.get("pair_steps", "dual")
        summary["disc_keypoints"] = train_config.get("disc_keypoints")
    if mode == "mixed":
        summary["pair_every"] = train_config.get("pair_every")
    return summary


def describe_training(summary: dict[str, Any]) -> str:
    """One line, e.g. 'mixed (dual every 2nd step), 250 steps, attention on, FM at 3 scales'."""
    mode = summary["mode"]
    if mode == "mixed":
        mode = (
            f"mixed ({summary.get('pair_steps')} on pairs every {summary.get('pair_every')} steps)"
        )
    elif mode == "dual":
        mode = f"dual ({summary.get('pair_steps')} on pairs)"
    attention = [k for k, on in summary["attention"].items() if on]
    scales = summary.get("feature_matching_scales") or [1.0]
    if summary.get("averaged_steps"):
        steps = summary["averaged_steps"]
        counted = ", ".join(str(s) if isinstance(s, int) else "?" for s in steps)
        trained = f"weights averaged from {len(steps)} checkpoints (steps {counted})"
    elif summary.get("steps") is not None:
        trained = f"{summary['steps']} steps"
    else:
        trained = "steps unknown"
    parts = [
        mode,
        trained,
        f"attention in {', '.join(attention)}" if attention else "no attention",
        f"feature matching at {len(scales)} scale{'s' if len(scales) > 1 else ''}",
    ]
    if summary.get("perceptual"):
        parts.append("perceptual loss")
    if summary.get("frozen"):
        parts.append(f"{' and '.join(summary['frozen'])} frozen")
    if summary.get("weight_average"):
        parts.append(f"weights averaged over steps (ema {summary['weight_average']:g})")
    if summary.get("quantization_aware"):
        kept = summary.get("quantization_float")
        parts.append(
            "quantization-aware (int8 export quantizes every convolution"
            + (f" outside the {' and '.join(kept)}, which stays float)" if kept else ")")
        )
    return ", ".join(parts)
