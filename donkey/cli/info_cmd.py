"""`donkey info`: parameters and GMAC per frame for each network."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from donkey.cli.common import MODEL_HELP, handles_errors, out


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
    from donkey.app.info import model_info

    info = model_info(config, model)
    if as_json:
        out.print_json(json.dumps(info.as_json()))
        return
    size = info.image_size
    table = Table(title=f"{info.label}: {size}x{size}, {info.num_kp} keypoints")
    table.add_column("network")
    table.add_column("parameters", justify="right")
    table.add_column("GMAC / frame", justify="right")
    for name, v in info.stats.items():
        table.add_row(name, f"{v['params'] / 1e6:.3f} M", f"{v['gmac']:.3f}")
    table.add_row("inference total", "", f"{info.inference_gmac:.3f}", style="bold")
    out.print(table)
    trained = info.trained()
    if trained is not None:
        out.print(f"trained: {trained}", highlight=False)
