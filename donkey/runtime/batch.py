"""Batch folder conversion: many sources x many drivings, each decoded and encoded once.

Work is grouped by driving video: its frames are decoded and its keypoints computed once, then
every source (encoded once and cached) is animated with it. A reader thread decodes the next
driving while the model runs; a writer thread encodes finished outputs. A bad file fails only
the items that need it; outputs are written atomically. Outputs that already exist are refused
before any work (`refuse_existing`) unless the caller skips or replaces them.
"""

from __future__ import annotations

import csv
import os
import re
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from donkey.data.frames import frames_to_tensor
from donkey.data.manifest import read_text_file
from donkey.data.media import (
    MEDIA_SUFFIXES,
    Budget,
    Clip,
    SourceImage,
    read_frames,
    read_source,
    read_video,
)
from donkey.data.writers import OUTPUT_SUFFIXES, check_output_suffix, write_video
from donkey.model.errors import DonkeyError
from donkey.runtime.animate_options import AnimateOptions
from donkey.runtime.animator import Animator, DrivingState, SourceState


@dataclass(frozen=True)
class Job:
    source: Path
    driving: Path
    output: Path


@dataclass
class BatchReport:
    """What a batch did. A failed item keeps its exception (a one-line DonkeyError)."""

    done: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, DonkeyError]] = field(default_factory=list)
    references: dict[Job, int] = field(default_factory=dict)  # relative mode's chosen frames
    frames: int = 0
    seconds: dict[str, float] = field(
        default_factory=lambda: {"read": 0.0, "model": 0.0, "write": 0.0}
    )


def _media_files(path: Path, suffixes: set[str]) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DonkeyError(f"{path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise DonkeyError(f"{path}: no media files in this folder")
    return files


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# The suffix a name usually has in its role is dropped; any other is kept, so that cat.png
# and cat.jpg (or horse.gif and horse.mp4) never share an output name.
_PLAIN_SOURCE, _PLAIN_DRIVING = ".png", ".gif"
MAX_PAIR_LIST_BYTES = 16 << 20
# A result is held whole before it is written: at --output-size source a long clip of a large
# picture would take tens of GB (10,000 frames of 1024 x 1024), so it is refused first.
MAX_RESULT_BYTES = 4 << 30


def _part(path: Path, plain_suffix: str) -> str:
    return path.stem if path.suffix == plain_suffix else path.name


def output_name(source: Path, driving: Path, suffix: str) -> str:
    """`<source>__<driving><suffix>`, reduced to safe characters so it cannot leave OUT_DIR.

    A pure function of the two input names: it never depends on what else is in the
    folders, so a later run with other files finds (and skips) the same outputs.
    """
    stem = f"{_part(source, _PLAIN_SOURCE)}__{_part(driving, _PLAIN_DRIVING)}"
    safe = _UNSAFE.sub("_", stem).strip("._") or "output"
    return safe[:180] + suffix


def plan_jobs(
    sources: Path,
    drivings: Path,
    out_dir: Path,
    pair_list: Path | None = None,
    suffix: str = ".gif",
) -> list[Job]:
    """Cross product of the two folders (or files), or the pairs of a `source,driving` CSV.

    Two different pairs whose names reduce to the same output name are refused (renaming a
    file fixes it); a pair listed twice is done once.
    """
    check_output_suffix(f"x{suffix}")
    src_files = _media_files(sources, MEDIA_SUFFIXES)
    drv_files = _media_files(drivings, MEDIA_SUFFIXES)
    if pair_list is None:
        pairs = [(s, d) for d in drv_files for s in src_files]
    else:
        pairs = _read_pair_list(pair_list, sources, drivings)
    jobs: list[Job] = []
    owner: dict[str, tuple[Path, Path]] = {}
    out_root = out_dir.resolve()
    for s, d in pairs:
        name = output_name(s, d, suffix)
        if name in owner:
            if owner[name] == (s, d):
                continue
            a, b = owner[name]
            raise DonkeyError(
                f"{a.name} + {b.name} and {s.name} + {d.name} would both write {name}; "
                "rename one of the files"
            )
        owner[name] = (s, d)
        target = (out_root / name).resolve()
        if target.parent != out_root:
            raise DonkeyError(f"output name {name!r} would leave {out_dir}")
        jobs.append(Job(s, d, target))
    return jobs


def refuse_existing(jobs: Sequence[Job], existing: Collection[int]) -> None:
    """One line naming the first output of `jobs` (indices `existing`) already there, the count
    and the two ways on; nothing to say when `existing` is empty."""
    if not existing:
        return
    first = jobs[min(existing)].output
    raise DonkeyError(
        f"{first}: exists ({len(existing)} of the {len(jobs)} outputs this batch would write "
        "do); pass --overwrite to replace them, or --skip-existing to keep them"
    )


def check_output_folder(out_dir: Path) -> None:
    """Batch output must be a folder that exists or can be created, and is writable."""
    if out_dir.suffix.lower() in MEDIA_SUFFIXES | set(OUTPUT_SUFFIXES):
        raise DonkeyError(
            f"{out_dir}: with folder inputs, -o must be a folder, not a file name "
            f"(ending in {out_dir.suffix})"
        )
    check_folder_location(out_dir)


def check_folder_location(out_dir: Path) -> None:
    """`out_dir` is a folder, or can be created as one, in a writable place."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DonkeyError(f"{out_dir}: exists and is not a folder")
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DonkeyError(f"{out_dir}: cannot create the folder, {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DonkeyError(f"{out_dir}: cannot write there ({existing} is not writable)")


def make_output_folder(out_dir: Path) -> None:
    check_output_folder(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DonkeyError(f"{out_dir}: cannot create the folder ({exc.strerror or exc})") from None


def remove_stale_temporaries(jobs: list[Job]) -> list[Path]:
    """Deletes the hidden temporary files a killed run left beside these jobs' outputs."""
    removed = []
    by_folder: dict[Path, set[str]] = {}
    for job in jobs:
        by_folder.setdefault(job.output.parent, set()).add(job.output.name)
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            match = _TEMPORARY.match(entry.name)
            if match and f"{match['stem']}{match['suffix']}" in names and entry.is_file():
                entry.unlink(missing_ok=True)
                removed.append(entry)
    return removed


# atomic_output's names: "." + stem + "." + 8 random characters + ".tmp" + suffix.
_TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.[A-Za-z0-9_]{8}\.tmp(?P<suffix>\.[A-Za-z0-9]+)$")


def _read_pair_list(path: Path, sources: Path, drivings: Path) -> list[tuple[Path, Path]]:
    text = read_text_file(path, "source,driving CSV", MAX_PAIR_LIST_BYTES)
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as exc:
        raise DonkeyError(f"{path}: malformed CSV ({exc})") from None
    src_dir = sources if sources.is_dir() else sources.parent
    drv_dir = drivings if drivings.is_dir() else drivings.parent
    pairs = []
    for i, row in enumerate(rows):
        if not row or row[0].startswith("#") or (i == 0 and row[0].strip().lower() == "source"):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise DonkeyError(f"{path}: line {i + 1} needs source,driving")
        resolved = []
        for name, base in ((row[0].strip(), src_dir), (row[1].strip(), drv_dir)):
            p = base / name
            if Path(name).is_absolute() or base.resolve() not in p.resolve().parents:
                raise DonkeyError(f"{path}: line {i + 1}: {name!r} is outside {base}")
            resolved.append(p)
        pairs.append((resolved[0], resolved[1]))
    if not pairs:
        raise DonkeyError(f"{path}: no pairs listed")
    return pairs


Progress = Callable[[str, Job | None, int], None]  # event, job, frames


@contextmanager
def _errors_of(path: Path, doing: str) -> Iterator[None]:
    """Anything raised inside becomes one DonkeyError naming `path` ("cannot read (...)"):
    one unreadable file must not stop a batch, and a single file says what is wrong in one
    line."""
    try:
        yield
    except DonkeyError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader/writer failure is this file's problem
        raise DonkeyError(
            f"{path}: cannot {doing} ({type(exc).__name__}: {_first_line(exc)})"
        ) from None


@contextmanager
def _clock(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Adds the time spent inside to `seconds[stage]` (read, model or write)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] += time.perf_counter() - started


def read_input(
    job: Job,
    size: int,
    options: AnimateOptions,
    budget: Budget | None,
    seconds: dict[str, float],
) -> tuple[SourceImage, Clip]:
    """A job's source picture (fitted to the model size `size`, with its alpha and own size)
    and its driving clip at that size; each file opened once."""
    fit, background = options.fit, options.background
    with _clock(seconds, "read"):
        with _errors_of(job.source, "read"):
            source = read_source(job.source, size, fit, background, budget)
        with _errors_of(job.driving, "read"):
            clip = read_video(job.driving, size, fit, background, budget)
    return source, clip


def render(
    animator: Animator,
    source: SourceImage,
    state: SourceState,
    driving: DrivingState,
    driving_frames: np.ndarray,
    options: AnimateOptions,
    progress: Callable[[int], None] | None = None,
    driving_path: Path | str = "driving",
) -> np.ndarray:
    """One result's frames as they will be written: animated (with the source's alpha moved
    along when it is kept), then `options.finish` (side by side, or the output size).
    `driving_path` names the clip in the error for a --reference past its end."""
    if animator.mode == "relative" and isinstance(animator.reference, int):
        if animator.reference >= len(driving):
            count = len(driving)
            raise DonkeyError(
                f"{driving_path}: reference frame {animator.reference}: the clip has {count} "
                f"frame{'s' if count != 1 else ''} (0 to {count - 1})"
            )
    alpha = source.alpha if options.wants_alpha(source) else None
    height, width = options.output_hw(source, source.image.shape[0])
    held = len(driving) * height * width * (4 if alpha is not None else 3)
    if held > MAX_RESULT_BYTES:
        raise DonkeyError(
            f"{len(driving)} frames of {width}x{height} would take {held / 2**30:.1f} GiB; give "
            "a smaller --output-size (or model) or a shorter driving clip"
        )
    grids: list[Tensor] | None = [] if options.wants_grids(source) else None
    frames = animator.animate_frames(state, driving, progress, alpha=alpha, grids=grids)
    motion = torch.cat(grids) if grids else None
    return options.finish(frames, source, driving_frames, motion)


def write_result(
    job: Job, frames: np.ndarray, clip: Clip, options: AnimateOptions, seconds: dict[str, float]
) -> None:
    """Writes a job's frames atomically (RGBA to MP4 is composited on the background)."""
    with _clock(seconds, "write"), _errors_of(job.output, "write"):
        write_video(job.output, frames, clip.fps, background=options.background)


def run_jobs(
    animator: Animator,
    jobs: list[Job],
    options: AnimateOptions,
    skip_existing: bool = False,
    progress: Progress | None = None,
    budget: Budget | None = None,
    frame_counts: dict[Path, int | None] | None = None,
) -> BatchReport:
    """Animates every job; failures are recorded, never raised (but DonkeyError from the model is).

    With `skip_existing`, an existing output is trusted only when it decodes to the frame
    count and size this run would write; anything else is written again. A skipped item is
    announced with the frames it will not render (`frame_counts`, from the headers; 0 unknown).
    """
    report = BatchReport()
    size = animator.model.config.image_size
    notify = progress or (lambda *_: None)
    counts = frame_counts or {}
    remove_stale_temporaries(jobs)
    by_driving: dict[Path, list[Job]] = {}
    for job in jobs:
        by_driving.setdefault(job.driving, []).append(job)
    drivings = list(by_driving)
    sources = _Sources(animator, size, options, budget, report)

    def read_driving(path: Path) -> Clip | DonkeyError:
        try:
            with _clock(report.seconds, "read"), _errors_of(path, "read"):
                return read_video(path, size, options.fit, options.background, budget)
        except DonkeyError as exc:
            return exc

    def fail(job: Job, exc: DonkeyError) -> None:
        report.failed.append((job, exc))
        notify("failed", job, 0)

    with (
        ThreadPoolExecutor(1, thread_name_prefix="donkey-read") as reader,
        ThreadPoolExecutor(1, thread_name_prefix="donkey-write") as writer,
    ):
        pending_read: Future | None = reader.submit(read_driving, drivings[0]) if drivings else None
        writes: list[tuple[Job, Future]] = []
        for index, driving_path in enumerate(drivings):
            clip = pending_read.result()
            if index + 1 < len(drivings):
                pending_read = reader.submit(read_driving, drivings[index + 1])
            group = by_driving[driving_path]
            if isinstance(clip, DonkeyError):
                for job in group:
                    fail(job, clip)
                continue
            todo = []
            for job in group:
                try:
                    source, state = sources.get(job.source)
                except DonkeyError as exc:
                    fail(job, exc)
                    continue
                height, width = options.output_hw(source, size)
                if skip_existing and output_complete(job.output, len(clip.frames), height, width):
                    report.skipped.append(job)
                    notify("skipped", job, counts.get(job.driving) or 0)
                else:
                    todo.append((job, source, state))
            if not todo:
                continue
            with _clock(report.seconds, "model"):
                driving_state = animator.driving_keypoints(frames_to_tensor(clip.frames))
            for job, source, state in todo:
                try:
                    with _clock(report.seconds, "model"):
                        relative = animator.mode == "relative"
                        frames = render(
                            animator, source, state, driving_state, clip.frames, options,
                            lambda n, job=job: notify("frames", job, n), job.driving,
                        )  # fmt: skip
                        reference = animator.reference_for(state, driving_state) if relative else -1
                except DonkeyError as exc:  # a --reference past this clip's end
                    fail(job, exc)
                    continue
                if reference >= 0:
                    report.references[job] = reference
                done = writer.submit(write_result, job, frames, clip, options, report.seconds)
                writes.append((job, done))
                report.frames += len(frames)
            writes = _collect(writes, report, notify, wait=False)
        _collect(writes, report, notify, wait=True)
    return report


def output_complete(path: Path, frames: int, height: int, width: int) -> bool:
    """Whether an existing output decodes to `frames` frames of height x width (an MP4's
    odd sides padded to even, as the writer pads them for yuv420p)."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    if path.suffix.lower() == ".mp4":
        height, width = height + height % 2, width + width % 2
    # Read within what this run would write (a large strip is over the default budget per
    # frame), never more than that.
    own = frames * height * width
    defaults = Budget.from_env()
    budget = Budget(
        max_pixels=max(defaults.max_pixels, own),
        max_frames=max(defaults.max_frames, frames),
        max_frame_pixels=max(defaults.max_frame_pixels, own),
    )
    try:
        clip = read_frames(path, strip=False, budget=budget)
    except DonkeyError:
        return False
    data = clip.frames
    if path.suffix.lower() == ".png":  # a strip: frames side by side
        return data.shape[0] == 1 and data.shape[1:3] == (height, width * frames)
    return data.shape[:3] == (frames, height, width)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:160] if text else "no detail"


class _Sources:
    """Each source read and encoded once per batch; a source that cannot be read keeps its
    error, so every item that needs it fails with the same line."""

    def __init__(
        self,
        animator: Animator,
        size: int,
        options: AnimateOptions,
        budget: Budget | None,
        report: BatchReport,
    ) -> None:
        self.animator, self.size, self.options, self.budget = animator, size, options, budget
        self.report = report
        self.cache: dict[Path, tuple[SourceImage, SourceState] | DonkeyError] = {}

    def get(self, path: Path) -> tuple[SourceImage, SourceState]:
        if path not in self.cache:
            self.cache[path] = self._load(path)
        found = self.cache[path]
        if isinstance(found, DonkeyError):
            raise found
        return found

    def _load(self, path: Path) -> tuple[SourceImage, SourceState] | DonkeyError:
        options, seconds = self.options, self.report.seconds
        try:
            with _clock(seconds, "read"), _errors_of(path, "read"):
                source = read_source(path, self.size, options.fit, options.background, self.budget)
        except DonkeyError as exc:
            return exc
        with _clock(seconds, "model"):
            state = self.animator.prepare_source(frames_to_tensor(source.image[None]))
        return source, state


def _collect(writes, report: BatchReport, notify, wait: bool):
    remaining = []
    for job, future in writes:
        if not wait and not future.done():
            remaining.append((job, future))
            continue
        try:
            future.result()
        except DonkeyError as exc:
            report.failed.append((job, exc))
            notify("failed", job, 0)
        else:
            report.done.append(job)
            # "done" carries the reference frame relative motion was measured from (-1: none).
            notify("done", job, report.references.get(job, -1))
    return remaining
