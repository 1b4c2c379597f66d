"""`donkey eval`: reconstruction and transfer L1 against the identity baseline."""

from __future__ import annotations

import copy
import json
import shlex
from pathlib import Path

import typer
from rich.table import Table

from donkey.cli.choices import DEVICE_METAVAR, ENGINE_HELP, Engine, Motion, Split, check_device
from donkey.cli.common import (
    MODEL_HELP,
    fail,
    handles_errors,
    max_frame_pixels_option,
    max_frames_option,
    max_pixels_option,
    out,
    progress_bar,
    say,
    set_read_budget,
    start_torch,
    tagged,
)
from donkey.model.errors import DonkeyError


@handles_errors
def evaluate(
    model: str | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    data: Path | None = typer.Option(
        None, "--data", help="Folder of test videos (reconstruction L1)."
    ),
    pairs: Path | None = typer.Option(
        None, "--pairs", help="Pairs manifest (transfer L1 against the paired ground truth)."
    ),
    split: Split = typer.Option(
        Split.all, help="Which --data videos: all, val (held out by `donkey train`) or train."
    ),
    val_fraction: float = typer.Option(
        0.1, help="Must match the training run's --val-fraction for --split val/train."
    ),
    limit: int | None = typer.Option(None, help="Evaluate at most this many videos / pairs."),
    engine: Engine | None = typer.Option(None, help=ENGINE_HELP),
    device: str = typer.Option("auto", metavar=DEVICE_METAVAR, callback=check_device),
    batch_size: int = typer.Option(16, "--batch-size", "-b", help="Frames per inference batch."),
    eval_size: int | None = typer.Option(
        None,
        "--size",
        min=8,
        max=1024,
        help="Compare at N x N pixels: targets read from the files at N, predictions resized to "
        "N (bilinear). Use it to compare models of different sizes. Default: the model's size.",
    ),
    transfer_mode: Motion = typer.Option(Motion.relative, help="Keypoint mode for transfer."),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object (l1, identity_l1, videos, ...)."
    ),
    details: bool = typer.Option(False, help="With --json: include per-video numbers."),
    max_pixels: str | None = max_pixels_option(),
    max_frames: str | None = max_frames_option(),
    max_frame_pixels: str | None = max_frame_pixels_option(),
) -> None:
    """Mean L1 (pixels in [0, 1]) of the model and of the identity baseline (output = source).

    Reconstruction: frame 0 of each video is the source and every frame drives, with absolute
    keypoints. Transfer (with --pairs): B posed like A's first frame is the source, A drives,
    B resampled to A is the target.

    Under `torchrun --nproc_per_node N -m donkey eval ...` each process takes a share of the
    videos and pairs; rank 0 prints the same numbers one process would.
    """
    if data is None and pairs is None:
        raise DonkeyError("give --data DIR, --pairs MANIFEST, or both")
    # A negative --limit sliced files[:-1] (all but the last) and a --val-fraction outside [0, 1)
    # moved every video into one split, both silently.
    if limit is not None and limit < 1:
        raise DonkeyError(f"--limit must be >= 1, got {limit}")
    if not (0.0 <= val_fraction < 1.0):
        raise DonkeyError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    start_torch()
    set_read_budget(max_pixels, max_frames, max_frame_pixels)
    from donkey.app import ranks as ranked
    from donkey.app.models import load_model
    from donkey.data.datasets import list_videos, load_videos, select_split
    from donkey.data.manifest import load_manifest
    from donkey.runtime.animator import Animator
    from donkey.train.evaluate import (
        EvalResult,
        reconstruction_l1,
        summarize_pairs,
        summarize_videos,
        transfer_items,
    )

    # torchrun: each rank evaluates a share of the videos and pairs; rank 0 merges the numbers
    # back into file order and prints them (the same means as one process).
    ranks, device = ranked.start(device)
    try:
        options = ranked.engine_options(ranks, None)  # ORT: this rank's share of the cores
        loaded = ranked.in_turn(
            ranks,
            lambda: load_model(
                model, engine, device, options=options, batch_size=batch_size, say=say
            ),
        )
        size = loaded.config.image_size
        at = eval_size if eval_size is not None and eval_size != size else None
        result = EvalResult()
        skipped: list[str] = []  # files (or pairs) that could not be read, reported at the end
        with progress_bar() as bar:
            if data is not None:
                files = select_split(list_videos(data), split, val_fraction)[:limit]
                if not files:
                    raise DonkeyError(f"{data}: no videos in split {split.value!r}")
                share = ranked.shard_items(ranks, files)

                def reconstruction() -> dict:
                    mine = [files[i] for i in share]
                    task = bar.add_task("reading", total=len(mine))
                    videos, unread = load_videos(
                        mine,
                        size,
                        progress=lambda i, n: bar.update(task, completed=i),
                        allow_empty=True,  # one rank's share may hold only bad files
                    )
                    targets = None
                    if at is not None:
                        names = {v.name for v in videos}
                        targets, more = load_videos(
                            [f for f in mine if f.name in names], at, allow_empty=True
                        )
                        unread += more
                        kept = {t.name for t in targets}
                        videos = [v for v in videos if v.name in kept]
                    task = bar.add_task("reconstruction", total=len(videos))
                    animator = Animator(loaded, batch_size=batch_size, mode="absolute")
                    part = reconstruction_l1(
                        animator, videos, lambda i, n: bar.update(task, completed=i), targets
                    )
                    index = {files[i].name: i for i in share}
                    return {
                        "per_video": [[index[v["video"]], v] for v in part.per_video],
                        "skipped": unread,
                    }

                parts = ranked.gather_results(ranks, reconstruction)
                notes = _gather_skipped(ranks, parts)
                skipped += notes
                per_video = sorted((i, v) for p in parts for i, v in p["per_video"])
                if not per_video:
                    first = notes[0] if notes else "no videos"
                    raise DonkeyError(f"none of the {len(files)} files could be used: {first}")
                result = summarize_videos([v for _, v in per_video])
            if pairs is not None:
                manifest = load_manifest(pairs)
                manifest.pairs = manifest.pairs[:limit]
                if not manifest.pairs:
                    raise DonkeyError(f"{pairs}: lists no pairs to evaluate")
                share = ranked.shard_weighted(ranks, [len(p.b_for_a) for p in manifest.pairs])

                def transfer() -> dict:
                    mine = copy.copy(manifest)
                    mine.pairs = [manifest.pairs[i] for i in share]
                    task = bar.add_task("transfer", total=len(mine.pairs))
                    animator = Animator(loaded, batch_size=batch_size, mode=transfer_mode)
                    notes: list[str] = []
                    items = transfer_items(
                        animator, mine, size, lambda i, n: bar.update(task, completed=i), at, notes
                    )
                    return {
                        "items": [[i, list(x)] for i, x in zip(share, items) if x is not None],
                        "skipped": notes,
                    }

                parts = ranked.gather_results(ranks, transfer)
                notes = _gather_skipped(ranks, parts)
                skipped += notes
                items = [item for _, item in sorted(tuple(x) for p in parts for x in p["items"])]
                if not items:
                    raise DonkeyError(
                        f"{pairs}: none of the {len(manifest.pairs)} pairs could be used: "
                        f"{notes[0]}"
                    )
                t_l1, t_id, n = summarize_pairs(items)
                result.transfer_l1, result.transfer_identity_l1, result.pairs = t_l1, t_id, n
    except DonkeyError:
        ranked.end_rank(ranks, failed=True)  # rank 0 prints it
        raise
    ranked.end_rank(ranks, failed=bool(skipped))  # every rank exits as rank 0 will
    if as_json:
        payload = result.as_dict(with_details=details)
        payload.update(model=str(loaded.path), engine=loaded.engine, split=split, size=at or size)
        payload["skipped"] = skipped
        out.print_json(json.dumps(payload))
        _fail_if_skipped(skipped)
        return
    pixels = f"{at}x{at}, model at {size}x{size}" if at else f"{size}x{size}"
    table = Table(title=f"{loaded.path.name} ({loaded.engine} on {loaded.device}, {pixels})")
    for column in ("metric", "model", "identity baseline", "items"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    if result.l1 is not None:
        table.add_row(
            f"reconstruction L1 ({split})",
            f"{result.l1:.4f}",
            f"{result.identity_l1:.4f}",
            str(result.videos),
        )
    if result.transfer_l1 is not None:
        table.add_row(
            "transfer L1",
            f"{result.transfer_l1:.4f}",
            f"{result.transfer_identity_l1:.4f}",
            str(result.pairs),
        )
    out.print(table)
    _next_steps(result, str(loaded.path), data, split)
    _fail_if_skipped(skipped)


def _gather_skipped(ranks, parts: list[dict]) -> list[str]:
    """Every rank's skipped items, in rank order; rank 0 prints each once."""
    notes = [note for p in parts for note in p["skipped"]]
    if ranks.main:
        for note in notes:
            tagged("skipped", "yellow", note)
    return notes


def _fail_if_skipped(skipped: list[str]) -> None:
    """Means over fewer items than asked for are printed, and the exit code says so."""
    if skipped:
        fail(f"{len(skipped)} skipped (listed above); the means cover the rest")


def _next_steps(result, model: str, data: Path | None, split: str) -> None:
    worse = [
        name
        for name, mine, baseline in (
            ("reconstruction", result.l1, result.identity_l1),
            ("transfer", result.transfer_l1, result.transfer_identity_l1),
        )
        if mine is not None and baseline is not None and mine >= baseline
    ]
    if worse:
        out.print(
            f"note: {' and '.join(worse)} L1 is no better than the identity baseline (output = "
            "source): the model has not learnt to move this data; train longer or on similar videos"
        )
    quoted = shlex.quote(model)
    if data is not None and split == "all":
        out.print(
            f"next: donkey eval --model {quoted} --data {shlex.quote(str(data))} --split val"
            "   # only the videos training held out"
        )
    out.print(f"next: donkey animate SOURCE DRIVING -o out.gif --model {quoted}")
