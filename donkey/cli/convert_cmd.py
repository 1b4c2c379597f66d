"""`donkey convert`: an official Monkey-Net checkpoint -> a Donkey checkpoint."""

from __future__ import annotations

from pathlib import Path

import typer

from donkey.cli.common import (
    check_checkpoint_suffix,
    check_seed,
    handles_errors,
    out,
    same_file,
    start_torch,
    tagged,
)
from donkey.model.errors import CheckpointError, DonkeyError


def _read_official(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    from donkey.model.checkpoint import load_weights_only

    data = load_weights_only(path, "cannot read safely")
    if not isinstance(data, dict) or "generator" not in data:
        raise CheckpointError(f"{path}: not a Monkey-Net checkpoint (no 'generator' entry)")
    return data


def _check_output(output: Path, checkpoint: Path, overwrite: bool) -> None:
    """Refuses, before any work, an -o that would replace the input or another file unasked,
    or that could not be written (the error then named a temporary file, after the work)."""
    from donkey.cli.preflight import check_writable

    if same_file(output, checkpoint):  # links and other spellings of the input included
        raise DonkeyError(f"{output}: is the input checkpoint; give the output another name")
    if output.is_dir():
        raise DonkeyError(f"{output}: is a folder; -o takes the checkpoint file to write")
    check_checkpoint_suffix(output)
    if (output.exists() or output.is_symlink()) and not overwrite:
        raise DonkeyError(
            f"{output}: exists; convert would replace it (give another -o, or --overwrite)"
        )
    folder = output.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise DonkeyError(f"{output}: cannot write there ({folder} is a file)")
    check_writable(output)


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
    if not checkpoint.is_file():
        raise CheckpointError(f"{checkpoint}: no such checkpoint file")
    _check_output(output, checkpoint, overwrite)
    check_seed(seed)
    start_torch()
    import torch

    from donkey.model.checkpoint import save_checkpoint
    from donkey.model.config import Config, config_to_dict, load_config
    from donkey.model.convert import convert_monkeynet_state
    from donkey.model.networks import Networks

    # The dataclass defaults are the paper-size model (that of the bundled config mgif).
    cfg = load_config(config) if config is not None else Config()
    torch.manual_seed(seed)
    networks = Networks(cfg.model)
    state, report = convert_monkeynet_state(_read_official(checkpoint), networks)
    if report.missing:
        model = f"config {config}" if config is not None else "the paper-size model (config mgif)"
        raise CheckpointError(
            f"{checkpoint}: only {report.required - len(report.missing)} of {report.required} "
            f"tensors fit {model} (first missing: {report.missing[0]}); is --config right?"
        )
    networks.load_state_dict(state)
    save_checkpoint(output, networks, train_config=config_to_dict(cfg.train))
    for key in report.unmapped:
        tagged("unmapped", "yellow", key)
    fresh = [k for k in report.kept_fresh if ".attention." not in k]
    for key in fresh:
        tagged("not in file, left at initialisation", "yellow", key)
    attention = len(report.kept_fresh) - len(fresh)
    out.print(
        f"wrote {output}: {report.mapped} tensors mapped, {len(report.unmapped)} unmapped, "
        f"{attention} attention tensors initialised (gates 0)"
    )
