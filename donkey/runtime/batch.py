"""Batch folder conversion: many sources x many drivings, each decoded and encoded once.

Work is grouped by driving video: its frames are decoded and its keypoints computed once, then
every source (encoded once and cached) is animated with it. A reader thread decodes the next
driving while the model runs; a writer thread encodes finished outputs. A bad file fails only
the items that need it; outputs are written atomically and may be skipped if they exist.
"""

from __future__ import annotations

import csv
import hashlib
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from donkey.data.frames import frames_to_tensor, tensor_to_frames
from donkey.data.media import MEDIA_SUFFIXES, Clip, MediaError, read_image, read_video
from donkey.data.writers import check_output_suffix, write_video
from donkey.model.errors import DonkeyError
from donkey.runtime.animate_options import AnimateOptions, side_by_side
from donkey.runtime.animator import Animator, SourceState


@dataclass(frozen=True)
class Job:
    source: Path
    driving: Path
    output: Path


@dataclass
class BatchReport:
    done: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
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


def output_name(source: Path, driving: Path, suffix: str) -> str:
    """`<source>__<driving><suffix>`, reduced to safe characters so it cannot leave OUT_DIR."""
    stem = f"{source.stem}__{driving.stem}"
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

    Names that would collide after sanitising get a short hash of their full paths.
    """
    check_output_suffix(f"x{suffix}")
    src_files = _media_files(sources, MEDIA_SUFFIXES)
    drv_files = _media_files(drivings, MEDIA_SUFFIXES)
    if pair_list is None:
        pairs = [(s, d) for d in drv_files for s in src_files]
    else:
        pairs = _read_pair_list(pair_list, sources, drivings)
    jobs, used = [], set()
    out_root = out_dir.resolve()
    for s, d in pairs:
        name = output_name(s, d, suffix)
        if name in used:
            digest = hashlib.sha1(f"{s.resolve()}|{d.resolve()}".encode()).hexdigest()[:8]
            name = f"{Path(name).stem}_{digest}{suffix}"
        used.add(name)
        target = (out_root / name).resolve()
        if target.parent != out_root:
            raise DonkeyError(f"output name {name!r} would leave {out_dir}")
        jobs.append(Job(s, d, target))
    return jobs


def _read_pair_list(path: Path, sources: Path, drivings: Path) -> list[tuple[Path, Path]]:
    try:
        rows = list(csv.reader(path.read_text().splitlines()))
    except OSError as exc:
        raise DonkeyError(f"{path}: cannot read pair list ({exc.strerror})") from None
    src_dir = sources if sources.is_dir() else sources.parent
    drv_dir = drivings if drivings.is_dir() else drivings.parent
    pairs = []
    for i, row in enumerate(rows):
        if not row or row[0].startswith("#") or (i == 0 and row[0].strip().lower() == "source"):
            continue
        if len(row) < 2:
            raise DonkeyError(f"{path}: line {i + 1} needs source,driving")
        s, d = (src_dir / row[0].strip()), (drv_dir / row[1].strip())
        for p, base in ((s, src_dir), (d, drv_dir)):
            if base.resolve() not in p.resolve().parents:
                raise DonkeyError(f"{path}: line {i + 1}: {p} is outside {base}")
        pairs.append((s, d))
    if not pairs:
        raise DonkeyError(f"{path}: no pairs listed")
    return pairs


Progress = Callable[[str, Job | None, int], None]  # event, job, frames


def run_jobs(
    animator: Animator,
    jobs: list[Job],
    options: AnimateOptions,
    skip_existing: bool = False,
    progress: Progress | None = None,
) -> BatchReport:
    """Animates every job; failures are recorded, never raised (but DonkeyError from the model is)."""
    report = BatchReport()
    size = animator.model.config.image_size
    notify = progress or (lambda *_: None)
    todo = []
    for job in jobs:
        if skip_existing and job.output.exists():
            report.skipped.append(job)
            notify("skipped", job, 0)
        else:
            todo.append(job)
    by_driving: dict[Path, list[Job]] = {}
    for job in todo:
        by_driving.setdefault(job.driving, []).append(job)
    drivings = list(by_driving)
    source_cache: dict[Path, SourceState | str] = {}
    source_images: dict[Path, np.ndarray] = {}

    def read_driving(path: Path) -> Clip | str:
        started = time.perf_counter()
        try:
            return read_video(path, size, options.fit, options.background)
        except MediaError as exc:
            return str(exc)
        finally:
            report.seconds["read"] += time.perf_counter() - started

    def write(job: Job, frames: np.ndarray, fps: float) -> None:
        started = time.perf_counter()
        write_video(job.output, frames, fps)
        report.seconds["write"] += time.perf_counter() - started

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
            if isinstance(clip, str):
                for job in group:
                    report.failed.append((job, clip))
                    notify("failed", job, 0)
                continue
            started = time.perf_counter()
            driving_state = animator.driving_keypoints(frames_to_tensor(clip.frames))
            report.seconds["model"] += time.perf_counter() - started
            for job in group:
                state = _source_state(
                    animator, job.source, size, options, source_cache, source_images, report
                )
                if isinstance(state, str):
                    report.failed.append((job, state))
                    notify("failed", job, 0)
                    continue
                started = time.perf_counter()
                parts = []
                for batch in animator.render_batches(state, driving_state):
                    parts.append(tensor_to_frames(batch))
                    notify("frames", job, batch.shape[0])
                if animator.device.type == "cuda":
                    torch.cuda.synchronize(animator.device)
                report.seconds["model"] += time.perf_counter() - started
                frames = np.concatenate(parts)
                if options.side_by_side:
                    frames = side_by_side(source_images[job.source], clip.frames, frames)
                writes.append((job, writer.submit(write, job, frames, clip.fps)))
                report.frames += len(frames)
            writes = _collect(writes, report, notify, wait=False)
        _collect(writes, report, notify, wait=True)
    return report


def _source_state(
    animator: Animator,
    path: Path,
    size: int,
    options: AnimateOptions,
    cache: dict,
    images: dict,
    report: BatchReport,
) -> SourceState | str:
    if path not in cache:
        started = time.perf_counter()
        try:
            image = read_image(path, size, options.fit, options.background)
        except MediaError as exc:
            cache[path] = str(exc)
            return cache[path]
        finally:
            report.seconds["read"] += time.perf_counter() - started
        started = time.perf_counter()
        images[path] = image
        cache[path] = animator.prepare_source(frames_to_tensor(image[None]))
        report.seconds["model"] += time.perf_counter() - started
    return cache[path]


def _collect(writes, report: BatchReport, notify, wait: bool):
    remaining = []
    for job, future in writes:
        if not wait and not future.done():
            remaining.append((job, future))
            continue
        try:
            future.result()
        except DonkeyError as exc:
            report.failed.append((job, str(exc)))
            notify("failed", job, 0)
        else:
            report.done.append(job)
            notify("done", job, 0)
    return remaining
