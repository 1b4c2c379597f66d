"""`donkey synth`: synthetic creature videos with pose JSON, optionally as exact pairs
(docs/architecture.md, "Pairs manifest"), written into a folder that records what synth wrote.

`check_options` refuses impossible sizes before anything is imported; `make_synth` checks the
folder, records the names it will write, and renders."""

from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from donkey.model.errors import DonkeyError


@dataclass(frozen=True)
class SynthOptions:
    """`donkey synth`'s options (its --help says what each one does)."""

    output: Path
    count: int
    pairs: bool
    size: int
    seed: int
    min_frames: int
    max_frames: int
    fmt: str  # the suffix: ".gif" or ".png"
    gaits: tuple[str, ...]
    overwrite: bool
    transparent: bool = False  # RGBA creatures on a transparent ground (the exact mask as alpha)


def check_options(options: SynthOptions) -> None:
    """Sizes and counts, refused before anything is rendered or imported."""
    o = options
    if o.count < 1 or o.size < 16 or o.min_frames < 2 or o.max_frames < o.min_frames:
        raise DonkeyError("need --count >= 1, --size >= 16 and 2 <= --min-frames <= --max-frames")
    _check_bounds(o.count, o.size, o.max_frames)


def make_synth(options: SynthOptions, progress: Callable[[int, int], None]) -> list[Path]:
    """Renders the videos (and pairs.json with --pairs) into the folder; returns the videos.
    `progress(done, count)` after each video (pair)."""
    o = options
    kept = _check_targets(o.output, o.count, o.pairs, o.fmt, o.overwrite)
    _record(o.output, kept | set(_planned(o.count, o.pairs, o.fmt)))
    from donkey.data.synthetic import synthesize

    return synthesize(
        o.output,
        o.count,
        size=o.size,
        seed=o.seed,
        pairs=o.pairs,
        frames=(o.min_frames, o.max_frames),
        fmt=o.fmt,
        progress=progress,
        gaits=o.gaits,
        transparent=o.transparent,
    )


def next_steps(output: Path, pairs: bool) -> list[str]:
    """What to run on the folder just written."""
    if pairs:
        manifest = shlex.quote(str(output / "pairs.json"))
        return [
            f"next: donkey eval --pairs {manifest}   # transfer L1 against exact ground truth",
            f"next: donkey train small-donkey --pairs {manifest} --init CKPT -o RUN",
        ]
    folder = shlex.quote(str(output))
    return [
        f"next: donkey train small --data {folder} -o runs/synth",
        f"next: donkey pairs {folder} -o pairs.json --keypoints synth",
    ]


# Upper bounds, so a typo cannot ask for terabytes: the largest model is 512 x 512, and eval
# compares at up to 1024; a million videos is beyond any training set this tool reads.
MAX_SIZE = 1024
MAX_COUNT = 1_000_000


def _check_bounds(count: int, size: int, max_frames: int) -> None:
    """Each video is rendered whole in memory (--size 100000 was killed for memory): none may be
    larger than the read budget animate, eval and train apply to the files they read."""
    from donkey.data.media import Budget

    if size > MAX_SIZE:
        raise DonkeyError(f"--size must be at most {MAX_SIZE}, got {size}")
    if count > MAX_COUNT:
        raise DonkeyError(f"--count must be at most {MAX_COUNT}, got {count}")
    budget = Budget.from_env()
    pixels = max_frames * size * size
    if max_frames > budget.max_frames or pixels > budget.max_pixels:
        raise DonkeyError(
            f"--max-frames {max_frames} of {size}x{size} ({pixels:.3g} pixels) exceed the read "
            f"budget of {budget.max_frames} frames and {budget.max_pixels:.3g} pixels per file "
            "(DONKEY_MAX_FRAMES, DONKEY_MAX_PIXELS); lower --max-frames or --size"
        )


# The names every synth run into a folder planned to write, so that --overwrite removes those
# and nothing else (a user's own pairs.json or creature_0007.json was deleted before).
RECORD = ".donkey-synth.json"


# Every name a synth run writes, whatever its count, format or --pairs.
_SYNTH_NAME = re.compile(r"(?:(?:creature_\d{4,}|pair_\d{4,}_[ab])\.(?:gif|png|json)|pairs\.json)")


def _planned(count: int, pairs: bool, fmt: str) -> list[str]:
    stems = (
        [f"pair_{i:04d}_{m}" for i in range(count) for m in "ab"]
        if pairs
        else [f"creature_{i:04d}" for i in range(count)]
    )
    return [f"{stem}{ext}" for stem in stems for ext in (fmt, ".json")] + (
        ["pairs.json"] if pairs else []
    )


def _recorded(output: Path) -> set[str]:
    path = output / RECORD
    if not path.is_file():
        return set()
    try:
        names = json.loads(path.read_text(encoding="utf-8"))["files"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        raise DonkeyError(
            f"{path}: damaged (it lists what earlier synth runs wrote here); remove it, and the "
            "files you no longer want, by hand"
        ) from None
    return set(names)


def _record(output: Path, names: set[str]) -> None:
    """Written before rendering, so an interrupted run's files are still known as synth's."""
    output.mkdir(parents=True, exist_ok=True)
    # A name of its own, so two runs writing at once do not share a half-written file.
    handle, tmp = tempfile.mkstemp(prefix=f"{RECORD}.", suffix=".tmp", dir=output)
    with os.fdopen(handle, "w", encoding="utf-8") as file:
        file.write(json.dumps({"files": sorted(names)}) + "\n")
    os.replace(tmp, output / RECORD)


def _check_targets(output: Path, count: int, pairs: bool, fmt: str, overwrite: bool) -> set[str]:
    """Refuses, before rendering, to replace files an earlier run (or anything else) left in
    OUTPUT: a second run with another seed would otherwise mix two data sets silently.
    Returns the names earlier runs recorded that are still to be kept in the record."""
    if output.exists() and not output.is_dir():
        raise DonkeyError(f"{output}: exists and is not a folder")
    if not output.is_dir():
        return set()
    recorded = _recorded(output)
    if overwrite:
        _remove_earlier_run(output, recorded, set(_planned(count, pairs, fmt)))
        return set()
    # One listing of the folder, not a stat per name synth would write (up to 4 million).
    stem = r"pair_(\d{4,})_[ab]" if pairs else r"creature_(\d{4,})"
    pattern = re.compile(rf"{stem}(?:{re.escape(fmt)}|\.json)")
    clashes = []
    with os.scandir(output) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            index = match.group(1) if match else ""
            if index and int(index) < count and index == f"{int(index):04d}":
                clashes.append(entry.name)
            elif pairs and entry.name == "pairs.json":
                clashes.append(entry.name)
    if clashes:
        total = count * (4 if pairs else 2) + (1 if pairs else 0)
        raise DonkeyError(
            f"{output / sorted(clashes)[0]}: exists ({len(clashes)} of the {total} files synth "
            "would write do); pass --overwrite to replace them, or give another folder"
        )
    return recorded


def _remove_earlier_run(output: Path, recorded: set[str], planned: set[str]) -> None:
    """--overwrite: what earlier runs recorded goes first, so a smaller or differently shaped new
    run does not leave old videos beside the new ones (training would read both). A file this
    run would write that no earlier run recorded is someone else's: refused, nothing removed."""
    with os.scandir(output) as entries:
        present = {e.name for e in entries if e.is_file() or e.is_symlink()}
    if not (output / RECORD).exists():
        legacy = sorted(n for n in present if _SYNTH_NAME.fullmatch(n))
        if legacy:
            # Folders synth wrote before it kept a record: which files are its own is unknown.
            raise DonkeyError(
                f"{output / legacy[0]}: {len(legacy)} file(s) named like synth's but no {RECORD} "
                "(written before synth kept one, or by someone else); remove them by hand, or "
                "give another folder"
            )
    foreign = sorted((planned & present) - recorded)
    if foreign:
        raise DonkeyError(
            f"{output / foreign[0]}: not recorded as written by donkey synth ({len(foreign)} such file(s) "
            f"where this run would write; {RECORD} lists what synth wrote); move them, or give "
            "another folder"
        )
    for name in sorted(recorded & present):
        (output / name).unlink()
