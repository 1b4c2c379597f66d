"""`donkey init`: random weights from a config."""

from __future__ import annotations

from pathlib import Path

import typer

from donkey.cli.common import check_checkpoint_suffix, check_seed, handles_errors, out, start_torch
from donkey.model.errors import DonkeyError


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
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing file at --output."
    ),
) -> None:
    """Write a checkpoint with freshly initialised weights for CONFIG."""
    check_seed(seed)
    # The temporary file's name used to be the error for a folder; and a trained checkpoint
    # at -o was silently replaced by random weights.
    if output.is_dir():
        raise DonkeyError(f"{output}: is a folder; -o takes the checkpoint file to write")
    check_checkpoint_suffix(output)
    if output.exists() and not overwrite:
        raise DonkeyError(
            f"{output}: exists; init would replace it with random weights "
            "(give another -o, or --overwrite)"
        )
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
