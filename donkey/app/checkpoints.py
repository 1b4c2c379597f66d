"""Checkpoints made from nothing but a config (`donkey init`) or from an official Monkey-Net
file (`donkey convert`), with the checks on -o made before any work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from donkey.app.preflight import check_writable, same_file
from donkey.app.process import start_torch
from donkey.model.errors import CheckpointError, DonkeyError
from donkey.model.files import CHECKPOINT_SUFFIXES


def check_checkpoint_suffix(output: Path) -> None:
    """-o of a command that writes a checkpoint, refused before any work otherwise."""
    if output.suffix not in CHECKPOINT_SUFFIXES:
        raise DonkeyError(
            f"{output}: unsupported output format '{output.suffix or '(none)'}' "
            "(use .ckpt or .safetensors)"
        )


def check_init_output(output: Path, overwrite: bool) -> None:
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


def init_checkpoint(config: Path, output: Path, seed: int, overwrite: bool) -> None:
    """Writes freshly initialised networks of `config` (a file or a bundled name) to `output`."""
    check_init_output(output, overwrite)
    start_torch()
    import torch

    from donkey.model.checkpoint import save_checkpoint
    from donkey.model.config import config_to_dict, load_config
    from donkey.model.networks import Networks

    cfg = load_config(config)
    torch.manual_seed(seed)
    networks = Networks(cfg.model)
    save_checkpoint(output, networks, train_config=config_to_dict(cfg.train))


def check_convert_paths(checkpoint: Path, output: Path, overwrite: bool) -> None:
    """Refuses, before any work, a missing input, and an -o that would replace the input or
    another file unasked, or that could not be written (the error then named a temporary file,
    after the work)."""
    if not checkpoint.is_file():
        raise CheckpointError(f"{checkpoint}: no such checkpoint file")
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


@dataclass(frozen=True)
class Converted:
    mapped: int  # tensors of the file placed in our networks
    unmapped: list[str]  # keys of the file that have no place in our networks
    fresh: list[str]  # our tensors (not attention) the file lacks, left at initialisation
    attention: int  # attention tensors initialised (Monkey-Net has none; gates start at 0)


def convert_checkpoint(checkpoint: Path, output: Path, config: Path | None, seed: int) -> Converted:
    """Maps Monkey-Net's 3-D (time kernel 1) weights onto the networks of `config` (default: the
    paper-size model) and writes them to `output`. Refused when the file leaves any weight of
    the keypoint detector, the generator or a discriminator it has unfilled."""
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
    fresh = [k for k in report.kept_fresh if ".attention." not in k]
    return Converted(
        mapped=report.mapped,
        unmapped=list(report.unmapped),
        fresh=fresh,
        attention=len(report.kept_fresh) - len(fresh),
    )


def _read_official(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    from donkey.model.checkpoint import load_weights_only

    data = load_weights_only(path, "cannot read safely")
    if not isinstance(data, dict) or "generator" not in data:
        raise CheckpointError(f"{path}: not a Monkey-Net checkpoint (no 'generator' entry)")
    return data
