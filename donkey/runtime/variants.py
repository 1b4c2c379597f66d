"""Which engine runs which precision, for `donkey bench`: the standard library only, so the CLI
can refuse a combination before PyTorch loads. The facts are the engine table's
(core/engines.py)."""

from __future__ import annotations

from donkey.core.engines import ENGINES
from donkey.core.vocab import PRECISIONS
from donkey.model.errors import DonkeyError


def bench_variants(engines: list[str], precisions: list[str]) -> list[tuple[str, str]]:
    """(engine, precision) pairs, engine-major, keeping only those an engine runs."""
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad or not precisions:
        raise DonkeyError(
            f"--precision takes a comma-separated subset of {', '.join(sorted(PRECISIONS))}, "
            f"got {','.join(precisions)!r}"
        )
    variants = [
        (e, p) for e in engines for p in precisions if e in ENGINES and p in ENGINES[e].precisions
    ]
    if not variants:
        raise DonkeyError(f"no engine of {','.join(engines)} runs {','.join(precisions)}")
    return variants
