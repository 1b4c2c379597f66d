"""`donkey init`: random weights from a config."""

from __future__ import annotations

from pathlib import Path

import typer

from donkey.cli.common import check_seed, handles_errors, out, start_torch


@handles_errors
def init(
    config: Path = typer.Argument(
        ...,
        help="YAML config (model + training sections): a file or a bundled name (donkey configs).",
    ),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Checkpoint to write (.ckpt or .safetensors)."
    ),
    seed: int = typer.Option(0, help="Seed for the random initialisation."),
) -> None:
    """Write a checkpoint with freshly initialised weights for CONFIG."""
    check_seed(seed)
    start_torch()
    import torch

    from donkey.model.checkpoint import save_checkpoint
    from donkey.model.config import config_to_dict, load_config
    from donkey.model.networks import Networks

    cfg = load_config(config)
    torch.manual_seed(seed)
    networks = Networks(cfg.model)
    save_checkpoint(output, networks, train_config=config_to_dict(cfg.train))
    out.print(f"wrote {output} (random weights, seed {seed}, config {config})")
