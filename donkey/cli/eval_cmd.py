"""`donkey eval`: reconstruction and transfer L1 against the identity baseline."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from donkey.cli.common import MODEL_HELP, handles_errors, out, progress_bar, tagged
from donkey.cli.models import load_model
from donkey.data.datasets import list_videos, load_videos, select_split
from donkey.data.manifest import load_manifest
from donkey.model.errors import DonkeyError
from donkey.runtime.animator import Animator
from donkey.train.evaluate import EvalResult, reconstruction_l1, transfer_l1


@handles_errors
def evaluate(
    model: str | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    data: Path | None = typer.Option(
        None, "--data", help="Folder of test videos (reconstruction L1)."
    ),
    pairs: Path | None = typer.Option(
        None, "--pairs", help="Pairs manifest (transfer L1 against the paired ground truth)."
    ),
    split: str = typer.Option(
        "all", help="Which --data videos: all, val (held out by `donkey train`) or train."
    ),
    val_fraction: float = typer.Option(
        0.1, help="Must match the training run's --val-fraction for --split val/train."
    ),
    limit: int | None = typer.Option(None, help="Evaluate at most this many videos / pairs."),
    engine: str | None = typer.Option(None, help="torch, ort or trt. Default: what --model is."),
    device: str = typer.Option("auto", help="cpu, cuda or auto."),
    batch_size: int = typer.Option(16, "--batch-size", "-b", help="Frames per inference batch."),
    transfer_mode: str = typer.Option(
        "relative", help="Keypoint mode for transfer: relative or absolute."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object (l1, identity_l1, videos, ...)."
    ),
    details: bool = typer.Option(False, help="With --json: include per-video numbers."),
) -> None:
    """Mean L1 (pixels in [0, 1]) of the model and of the identity baseline (output = source).

    Reconstruction: frame 0 of each video is the source and every frame drives, with absolute
    keypoints. Transfer (with --pairs): B posed like A's first frame is the source, A drives,
    B resampled to A is the target.
    """
    if data is None and pairs is None:
        raise DonkeyError("give --data DIR, --pairs MANIFEST, or both")
    loaded = load_model(model, engine, device)
    size = loaded.config.image_size
    result = EvalResult()
    with progress_bar() as bar:
        if data is not None:
            files = select_split(list_videos(data), split, val_fraction)[:limit]
            if not files:
                raise DonkeyError(f"{data}: no videos in split {split!r}")
            task = bar.add_task("reading", total=len(files))
            videos, skipped = load_videos(
                files, size, progress=lambda i, n: bar.update(task, completed=i)
            )
            for note in skipped:
                tagged("skipped", "yellow", note)
            task = bar.add_task("reconstruction", total=len(videos))
            animator = Animator(loaded, batch_size=batch_size, mode="absolute")
            result = reconstruction_l1(animator, videos, lambda i, n: bar.update(task, completed=i))
        if pairs is not None:
            manifest = load_manifest(pairs)
            manifest.pairs = manifest.pairs[:limit]
            task = bar.add_task("transfer", total=len(manifest.pairs))
            animator = Animator(loaded, batch_size=batch_size, mode=transfer_mode)
            t_l1, t_id, n = transfer_l1(
                animator, manifest, size, lambda i, n: bar.update(task, completed=i)
            )
            result.transfer_l1, result.transfer_identity_l1, result.pairs = t_l1, t_id, n
    if as_json:
        payload = result.as_dict(with_details=details)
        payload.update(model=str(loaded.path), engine=loaded.engine, split=split)
        out.print_json(json.dumps(payload))
        return
    table = Table(title=f"{loaded.path.name} ({loaded.engine} on {loaded.device})")
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
