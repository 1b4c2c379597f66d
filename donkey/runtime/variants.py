"""Which engine runs which precision: the standard library only, so the CLI can refuse a
combination before PyTorch loads."""

from __future__ import annotations

from donkey.model.errors import DonkeyError

# Which precisions each engine runs (runtime/loader.py refuses the others).
ENGINE_PRECISIONS = {
    "torch": ("fp32", "fp16", "bf16"),
    "ort": ("fp32", "fp16", "int8"),
    "trt": ("fp32", "fp16"),
    "openvino": ("fp32", "int8"),
}


def bench_variants(engines: list[str], precisions: list[str]) -> list[tuple[str, str]]:
    """(engine, precision) pairs, engine-major, keeping only those an engine runs."""
    known = {p for values in ENGINE_PRECISIONS.values() for p in values}
    bad = [p for p in precisions if p not in known]
    if bad or not precisions:
        raise DonkeyError(
            f"--precision takes a comma-separated subset of {', '.join(sorted(known))}, "
            f"got {','.join(precisions)!r}"
        )
    variants = [(e, p) for e in engines for p in precisions if p in ENGINE_PRECISIONS.get(e, ())]
    if not variants:
        raise DonkeyError(f"no engine of {','.join(engines)} runs {','.join(precisions)}")
    return variants
