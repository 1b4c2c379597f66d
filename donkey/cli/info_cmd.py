"""`donkey info`: parameters and GMAC per frame for each network."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from donkey.cli.common import MODEL_HELP, handles_errors, out, start_torch
from donkey.model.errors import DonkeyError


def _model_config(config: Path | None, model: str | None):
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


@handles_errors
def info(
    config: Path | None = typer.Argument(
        None,
        help="YAML config (a file or a bundled name: donkey configs) to describe instead of a model.",
    ),
    model: str | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Parameters and multiply-accumulates per output frame of each network.

    GMAC counts convolutions for one frame at the model's image size. `generator` excludes
    the dense motion module; inference per frame is kp_detector + dense_motion + generator.
    For a checkpoint, also how it was trained (mode, steps, attention, feature matching).
    """
    cfg, label, trained = _model_config(config, model)
    from donkey.model.complexity import model_complexity
    from donkey.model.provenance import describe_training

    stats = model_complexity(cfg)
    if as_json:
        payload = {
            k: {"params": int(v["params"]), "gmac": round(v["gmac"], 4)} for k, v in stats.items()
        }
        payload["image_size"] = cfg.image_size
        payload["num_kp"] = cfg.num_kp
        payload["inference_gmac_per_frame"] = round(
            sum(stats[k]["gmac"] for k in ("kp_detector", "dense_motion", "generator")), 4
        )
        if trained is not None:
            payload["training"] = trained
        out.print_json(json.dumps(payload))
        return
    table = Table(title=f"{label}: {cfg.image_size}x{cfg.image_size}, {cfg.num_kp} keypoints")
    table.add_column("network")
    table.add_column("parameters", justify="right")
    table.add_column("GMAC / frame", justify="right")
    for name, v in stats.items():
        table.add_row(name, f"{v['params'] / 1e6:.3f} M", f"{v['gmac']:.3f}")
    total = sum(stats[k]["gmac"] for k in ("kp_detector", "dense_motion", "generator"))
    table.add_row("inference total", "", f"{total:.3f}", style="bold")
    out.print(table)
    if trained is not None:
        out.print(f"trained: {describe_training(trained)}", highlight=False)
