"""`donkey synth`: synthetic creature videos with pose JSON, optionally as exact pairs."""

from __future__ import annotations

import json
import os
import re
import shlex
import tempfile
from pathlib import Path

import typer

from donkey.cli.choices import GAITS, SynthFormat, check_gaits
from donkey.cli.common import check_seed, handles_errors, out, progress_bar
from donkey.model.errors import DonkeyError

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


@handles_errors
def synth(
    output: Path = typer.Argument(
        ..., help="Folder to write videos (+ a .json of poses beside each)."
    ),
    count: int = typer.Option(
        16, "--count", "-n", help="Number of videos, or of pairs with --pairs."
    ),
    pairs: bool = typer.Option(
        False, "--pairs", help="Two creatures per pose sequence, plus OUTPUT/pairs.json."
    ),
    size: int = typer.Option(128, help="Frame side in pixels."),
    seed: int = typer.Option(0, help="Seed: the same seed writes byte-identical files."),
    min_frames: int = typer.Option(16, help="Shortest video."),
    max_frames: int = typer.Option(32, help="Longest video."),
    fmt: SynthFormat = typer.Option(SynthFormat.gif, "--format", help="png: a lossless PNG strip."),
    gaits: str = typer.Option(
        ",".join(GAITS),
        callback=check_gaits,
        help=f"Comma-separated gaits to draw from: {', '.join(GAITS)}.",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Remove what earlier synth runs wrote into OUTPUT (the files listed in "
        f"OUTPUT/{RECORD}; nothing else) before writing. A file this run would write that "
        "synth did not write is never replaced: the run is refused.",
    ),
) -> None:
    """Render animal-like creatures (body, head, ears, tail, wings, 2-4 legs) walking, galloping,
    hopping or flapping, with their joint positions per frame."""
    if count < 1 or size < 16 or min_frames < 2 or max_frames < min_frames:
        raise DonkeyError("need --count >= 1, --size >= 16 and 2 <= --min-frames <= --max-frames")
    _check_bounds(count, size, max_frames)
    check_seed(seed)
    kept = _check_targets(output, count, pairs, f".{fmt}", overwrite)
    _record(output, kept | set(_planned(count, pairs, f".{fmt}")))
    chosen = tuple(gaits.split(","))  # checked while parsing (check_gaits)
    from donkey.data.synthetic import synthesize

    with progress_bar() as bar:
        task = bar.add_task("rendering", total=count)
        written = synthesize(
            output,
            count,
            size=size,
            seed=seed,
            pairs=pairs,
            frames=(min_frames, max_frames),
            fmt=f".{fmt}",
            progress=lambda i, n: bar.update(task, completed=i),
            gaits=chosen,
        )
    extra = f" and {output / 'pairs.json'}" if pairs else ""
    videos = "video" if len(written) == 1 else "videos"
    out.print(f"wrote {len(written)} {videos} to {output}{extra}")
    folder = shlex.quote(str(output))
    if pairs:
        manifest = shlex.quote(str(output / "pairs.json"))
        out.print(
            f"next: donkey eval --pairs {manifest}   # transfer L1 against exact ground truth"
        )
        out.print(f"next: donkey train small-donkey --pairs {manifest} --init CKPT -o RUN")
    else:
        out.print(f"next: donkey train small --data {folder} -o runs/synth")
        out.print(f"next: donkey pairs {folder} -o pairs.json --keypoints synth")
