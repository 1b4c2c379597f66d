"""`donkey convert`: an official Monkey-Net checkpoint -> a Donkey checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from donkey.cli.common import check_seed, handles_errors, out, tagged


@handles_errors
def convert(
    checkpoint: Path = typer.Argument(
        ..., help="Official Monkey-Net checkpoint (e.g. moving-gif.pth.tar)."
    ),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Donkey checkpoint to write (.ckpt or .safetensors)."
    ),
    config: Path | None = typer.Option(
        None,
        help="Config whose model the weights fill; `donkey` (configs/donkey.yaml) adds attention (gates start "
        "at 0). Default: Monkey-Net's paper-size model (the model of config mgif).",
    ),
    seed: int = typer.Option(0, help="Seed for modules the file lacks (attention)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing file at --output."
    ),
) -> None:
    """Map Monkey-Net's 3-D (time kernel 1) weights onto our 2-D networks; report unmapped keys.

    Refused when the file leaves any weight of the keypoint detector, the generator or a
    discriminator it has unfilled (usually a --config other than the one it was trained with)."""
    from donkey.app.checkpoints import check_convert_paths, convert_checkpoint

    check_convert_paths(checkpoint, output, overwrite)
    check_seed(seed)
    converted = convert_checkpoint(checkpoint, output, config, seed)
    for key in converted.unmapped:
        tagged("unmapped", "yellow", key)
    for key in converted.fresh:
        tagged("not in file, left at initialisation", "yellow", key)
    out.print(
        f"wrote {output}: {converted.mapped} tensors mapped, {len(converted.unmapped)} unmapped, "
        f"{converted.attention} attention tensors initialised (gates 0)"
    )
