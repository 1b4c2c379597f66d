"""Average the inference weights of checkpoints from one line of training (a weight average).

    python scripts/average_weights.py OUT.safetensors A.ckpt B.safetensors [...] [--weights 2,1]
        [--overwrite]

OUT comes first and must not exist, unless --overwrite (then it is replaced atomically, after
every input is read; it may be one of them). Every input must describe the same networks (the
same model config) and the same quantization-aware setting. The keypoint detector's
and generator's float tensors, batch-norm statistics included, are averaged with the given
weights (equal by default, normalised to sum to 1); integer tensors come from the first input.
The result has no discriminator, like a shipped model, keeps the last input's training settings
(the newest training, when inputs are given oldest first) and records which files it came from,
with their steps and weights (`donkey info` shows the steps). docs/default-model.md, "Weight averaging", says when this helps:
checkpoints of one run, or of runs continued one from another, not unrelated models.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from donkey.model.checkpoint import DISCRIMINATOR_PREFIX, load_checkpoint, save_weights
from donkey.model.errors import DonkeyError
from donkey.model.files import CHECKPOINT_SUFFIXES
from donkey.model.provenance import saved_step


def parse_weights(text: str, count: int) -> list[float]:
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise DonkeyError(f"--weights {text!r}: give {count} numbers separated by commas") from None
    if len(weights) != count or not all(math.isfinite(w) and w >= 0 for w in weights):
        raise DonkeyError(f"--weights {text!r}: give {count} numbers >= 0 separated by commas")
    if not 0 < sum(weights) < math.inf:
        raise DonkeyError(f"--weights {text!r}: at least one must be above 0, the sum finite")
    return [w / sum(weights) for w in weights]


def _qat(ckpt) -> tuple:
    t = ckpt.train_config or {}
    return bool(t.get("qat")), tuple(t.get("qat_float") or ())


def average(target: Path, sources: list[Path], weights: list[float]) -> Path:
    checkpoints = [load_checkpoint(p) for p in sources]
    first = checkpoints[0]
    for ckpt in checkpoints[1:]:
        if ckpt.model_config != first.model_config:
            raise DonkeyError(f"{ckpt.path}: its model config differs from {first.path}'s")
        if _qat(ckpt) != _qat(first):
            # The int8 export follows train.qat; a mean of a QAT model and a plain one is neither.
            raise DonkeyError(
                f"{ckpt.path}: trained with another quantization-aware setting than {first.path}"
            )
    # Inference keys only: a shipped input has no discriminator to average.
    state = {
        key: value
        if not value.is_floating_point()
        else sum(w * c.state[key].double() for w, c in zip(weights, checkpoints)).to(value.dtype)
        for key, value in first.state.items()
        if not key.startswith(DISCRIMINATOR_PREFIX)
    }
    origins = [
        {
            "file": p.name,
            "step": saved_step(c.train_config, c.training),
            "weight": round(w, 6),
        }
        for p, c, w in zip(sources, checkpoints, weights)
    ]
    # The newest training's settings describe the result best; the step is the inputs'.
    newest = dict(checkpoints[-1].train_config or {})
    newest.pop("shipped_from_step", None)
    newest["averaged_from"] = origins
    return save_weights(target, first.model_config, state, train_config=newest, inference_only=True)


def main(argv: list[str]) -> None:
    overwrite = "--overwrite" in argv
    argv = [a for a in argv if a != "--overwrite"]
    weights_text = None
    if "--weights" in argv:
        at = argv.index("--weights")
        if at + 1 >= len(argv):
            raise SystemExit(__doc__)
        weights_text = argv[at + 1]
        argv = argv[:at] + argv[at + 2 :]
    if len(argv) < 3:
        raise SystemExit(__doc__)
    target, sources = Path(argv[0]), [Path(a) for a in argv[1:]]
    if target.suffix not in CHECKPOINT_SUFFIXES:
        raise SystemExit(f"error: {target}: the output must be a .safetensors (or .ckpt) file")
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise SystemExit(
            f"error: {target}: exists; the output comes first (OUT A B ...): pass --overwrite "
            "to replace it"
        )
    try:
        weights = (
            parse_weights(weights_text, len(sources))
            if weights_text is not None
            else [1 / len(sources)] * len(sources)
        )
        written = average(target, sources, weights)
    except DonkeyError as exc:
        raise SystemExit(f"error: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"error: {target}: cannot write ({exc.strerror or exc})") from None
    parts = ", ".join(f"{p} x {w:.3g}" for p, w in zip(sources, weights))
    print(f"wrote {written} ({written.stat().st_size / 1e6:.1f} MB): {parts}")


if __name__ == "__main__":
    main(sys.argv[1:])
