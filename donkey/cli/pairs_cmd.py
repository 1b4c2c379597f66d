"""`donkey pairs`: pair GIFs by movement and resample their frames (Donkey-Net paper, 4.2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from donkey.cli.choices import DEVICE_METAVAR, KeypointSource, Split, check_device
from donkey.cli.common import (
    MODEL_HELP,
    console,
    handles_errors,
    out,
    progress_bar,
    say,
    tagged,
)
from donkey.model.errors import DonkeyError


@handles_errors
def pairs(
    folder: Path = typer.Argument(..., help="Folder of GIFs / videos / PNG strips to pair."),
    output: Path = typer.Option(..., "-o", "--output", help="Pairs manifest to write (JSON)."),
    model: str | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    keypoints: KeypointSource = typer.Option(
        KeypointSource.model,
        help="model: the detector of --model; synth: the pose JSON beside each synthetic video.",
    ),
    clusters: Path | None = typer.Option(
        None, help="Manual cluster CSV (file,cluster); default: automatic clustering."
    ),
    vgg11_weights: Path | None = typer.Option(
        None,
        "--vgg11-weights",
        help="ImageNet VGG-11 state dict for appearance similarity (else the model's encoder features).",
    ),
    sheets: Path | None = typer.Option(
        None, help="Write contact sheets (PNG per cluster, index.html, clusters_template.csv) here."
    ),
    alpha: float = typer.Option(0.8, help="Weight of the unique-frame fraction in the score."),
    threshold: float = typer.Option(
        0.14, help="Keep a pair when mean residual - alpha * unique <= threshold."
    ),
    max_repeated: float = typer.Option(
        0.25, help="Keep a pair when its repeated-frame fraction <= this."
    ),
    min_difference: float = typer.Option(
        0.008,
        help="Reject a pair as a duplicate when its matched frames differ by less than this "
        "(mean absolute difference, pixels in [0, 1]); 0 keeps duplicates.",
    ),
    appearance_min: float = typer.Option(
        0.8, help="Automatic clusters: minimum first-frame cosine similarity."
    ),
    motion_max: float | None = typer.Option(
        None, help="Automatic clusters: maximum coarse pairing score (default: --threshold)."
    ),
    neighbours: int = typer.Option(
        5, help="Automatic clusters: link only mutual nearest neighbours (this many) by motion."
    ),
    device: str = typer.Option(
        "auto", metavar=DEVICE_METAVAR, callback=check_device, help="For the keypoint detector."
    ),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Frames per detector batch."),
    split: Split = typer.Option(
        Split.all,
        help="Which videos of FOLDER: all, train (leaves out the ones donkey train holds out "
        "for validation, so pairs never leak them into training) or val.",
    ),
    val_fraction: float = typer.Option(
        0.1, help="Must match the training run's --val-fraction for --split train/val."
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="Replace an existing manifest at -o and the files of an earlier --sheets run.",
    ),
    identity_change: int = typer.Option(
        0,
        "--identity-change",
        min=0,
        max=64,
        help="Exact pairs instead: each video of FOLDER with N copies of itself in another "
        "shape and colour (same motion frame by frame). -o is then a folder: the copies (PNG "
        "strips), the originals and pairs.json go there.",
    ),
    strength: float = typer.Option(
        1.0, min=0.0, max=1.0, help="--identity-change: how strong the change is (0: none)."
    ),
    seed: int = typer.Option(0, min=0, help="--identity-change: the changes' random seed."),
) -> None:
    """Cluster videos by movement, resample each pair's frames to matching poses (least-squares
    affine fit of keypoints, both directions), filter, and write a pairs manifest. With
    --identity-change N, pair each video with N identity-changed copies of itself instead."""
    if not identity_change and (strength != 1.0 or seed != 0):
        raise DonkeyError("--strength and --seed set the changes of --identity-change N; give it")
    if identity_change:
        changes = (identity_change, strength, seed, split.value, val_fraction)
        _identity_pairs(folder, output, changes, overwrite)
        return
    from donkey.app.pairs import PairsOptions, check_options, make_pairs

    options = PairsOptions(
        folder=folder,
        output=output,
        model=model,
        keypoints=keypoints.value,
        clusters=clusters,
        vgg11_weights=vgg11_weights,
        sheets=sheets,
        alpha=alpha,
        threshold=threshold,
        max_repeated=max_repeated,
        min_difference=min_difference,
        appearance_min=appearance_min,
        motion_max=motion_max,
        neighbours=neighbours,
        device=device,
        batch_size=batch_size,
        split=split.value,
        val_fraction=val_fraction,
        overwrite=overwrite,
    )
    check_options(options)
    with progress_bar() as bar:
        result = make_pairs(options, _stages(bar), _note)
    if result.sheets_index is not None:
        out.print(f"contact sheets: {result.sheets_index}")
    _summary(result.report, result.directions, result.seconds, output)
    _next_steps(result.report, output, clusters is not None, result.params, result.cluster_options)


def _identity_pairs(folder: Path, output: Path, changes: tuple, overwrite: bool) -> None:
    """--identity-change: the pairs folder, with a bar over the videos."""
    from donkey.app.identity_pairs import make_identity_pairs, videos_of_split

    per_video, strength, seed, split, val_fraction = changes
    files = videos_of_split(folder, split, val_fraction)
    with progress_bar() as bar:
        task = bar.add_task("identity changes (videos)", total=len(files))
        manifest = make_identity_pairs(
            files, output, per_video, seed, strength, split, val_fraction,
            overwrite=overwrite, progress=lambda done: bar.update(task, completed=done),
        )  # fmt: skip
    out.print(f"wrote {manifest}")
    out.print(f"next: donkey train --pairs {manifest} ...  or  donkey eval --pairs {manifest}")


def _stages(bar) -> Callable[[str, int, int | None], None]:
    """One progress task per stage of the run, added when the run announces the stage."""
    tasks: dict[str, int] = {}

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    return progress


def _note(label: str, message: str) -> None:
    """Skipped videos and warnings in yellow; building into the cache as every command says it."""
    if label == "warning":
        console.print(message, style="yellow")
    elif label == "skipped":
        tagged(label, "yellow", message)
    else:
        say(label, message)


def _summary(report, directions: dict[str, str], seconds: float, output: Path) -> None:
    counts = {d: sum(1 for v in directions.values() if v == d) for d in ("left", "right", "still")}
    table = Table(title=f"donkey pairs: {len(directions)} videos in {seconds:.1f}s")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row(
        "moving left / right / still", f"{counts['left']} / {counts['right']} / {counts['still']}"
    )
    table.add_row("clusters", str(len(report.clusters)))
    table.add_row("candidate pairs", str(report.candidates))
    table.add_row("kept pairs", str(report.kept), style="bold green")
    for reason, n in sorted(report.rejected_by.items()):
        table.add_row(f"rejected: {reason}", str(n))
    out.print(table)
    out.print(f"wrote {output}")


def _next_steps(
    report, output: Path, manual: bool, params, cluster_options: dict[str, float]
) -> None:
    """With pairs: how to use them. Without: which options let more pairs through."""
    from donkey.app.pairs import next_steps

    for line in next_steps(report, output, manual, params, cluster_options):
        out.print(line)
