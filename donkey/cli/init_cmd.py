"""`donkey init`: random weights from a config."""

from __future__ import annotations

from pathlib import Path

import typer

from donkey.cli.common import check_seed, handles_errors, out


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
    from donkey.app.checkpoints import init_checkpoint

    init_checkpoint(config, output, seed, overwrite)
    out.print(f"wrote {output} (random weights, seed {seed}, config {config})")
