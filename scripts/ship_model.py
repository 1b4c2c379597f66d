"""Write a training checkpoint's inference weights as the bundled default model.

    python scripts/ship_model.py runs/small/last.ckpt [donkey/assets/default.safetensors]
    python scripts/ship_model.py --keep-discriminator runs/small/last.ckpt weights.safetensors

Only run this after `donkey eval` shows the new weights beat the shipped ones (README,
"The default model"). The discriminator is left out to keep the file under 30 MB, unless
--keep-discriminator (weights to fine-tune from with --init without a fresh discriminator,
as scripts/gpu_stage2.sh sends back; still without the optimiser state).
"""

from __future__ import annotations

import sys
from pathlib import Path

from donkey.model.checkpoint import build_networks, load_checkpoint, save_checkpoint
from donkey.model.errors import DonkeyError
from donkey.model.files import CHECKPOINT_SUFFIXES
from donkey.model.provenance import saved_step
from donkey.runtime.loader import DEFAULT_MODEL


def main(argv: list[str]) -> None:
    keep_discriminator = "--keep-discriminator" in argv
    argv = [a for a in argv if a != "--keep-discriminator"]
    if not 1 <= len(argv) <= 2:
        raise SystemExit(__doc__)
    source = Path(argv[0])
    target = Path(argv[1]) if len(argv) == 2 else DEFAULT_MODEL
    if target.suffix not in CHECKPOINT_SUFFIXES:
        raise SystemExit(f"error: {target}: the output must be a .safetensors (or .ckpt) file")
    try:
        ckpt = load_checkpoint(source)
    except DonkeyError as exc:
        raise SystemExit(f"error: {exc}") from None
    networks = build_networks(ckpt)
    # A weights-only file (scripts/gpu_stage2.sh's) carries its step in its train config.
    step = saved_step(ckpt.train_config, ckpt.training)
    try:
        save_checkpoint(
            target,
            networks,
            train_config={**(ckpt.train_config or {}), "shipped_from_step": step},
            inference_only=not keep_discriminator,
        )
    except DonkeyError as exc:
        raise SystemExit(f"error: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"error: {target}: cannot write ({exc.strerror or exc})") from None
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB) from {source} at step {step}")


if __name__ == "__main__":
    main(sys.argv[1:])
