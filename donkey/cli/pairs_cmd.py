"""`donkey pairs`: pair GIFs by movement and resample their frames (Donkey-Net paper, 4.2)."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shlex
import time
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
    same_file,
    say,
    start_torch,
    tagged,
)
from donkey.model.errors import DonkeyError


def _synth_keypoints(files: list[Path]) -> list:
    import numpy as np

    from donkey.data.synthetic import read_sidecar

    out = []
    for f in files:
        try:
            side = read_sidecar(f)
        except (OSError, ValueError) as exc:
            raise DonkeyError(
                f"{f}: no readable pose JSON beside it for --keypoints synth ({exc})"
            ) from None
        out.append(np.array([frame["keypoints"] for frame in side["frames"]], dtype=np.float64))
    return out


def _looks_like_manifest(path: Path) -> bool:
    """A .json file holding what `pairs` writes (a version and a list of pairs); any other JSON
    (a config, someone's data) is not replaced."""
    from donkey.data.manifest import read_text_file

    if path.suffix.lower() != ".json":
        return False
    try:
        data = json.loads(read_text_file(path, "pairs manifest"))
    except (DonkeyError, ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        return False
    return isinstance(data, dict) and "version" in data and isinstance(data.get("pairs"), list)


# --option -> (lowest, highest) it takes; every one must be a finite number.
NUMBER_RANGES = {
    "--alpha": (0.0, 100.0),
    "--threshold": (-100.0, 100.0),
    "--max-repeated": (0.0, 1.0),
    "--min-difference": (0.0, 1.0),
    "--appearance-min": (-1.0, 1.0),
    "--motion-max": (-100.0, 100.0),
}


def _check_numbers(values: dict[str, float | None]) -> None:
    for option, value in values.items():
        if value is None:
            continue
        low, high = NUMBER_RANGES[option]
        if not math.isfinite(value) or not low <= value <= high:
            raise DonkeyError(f"{option} must be a number from {low:g} to {high:g}, got {value}")


# Every name contact_sheets.write_sheets writes into --sheets; index and template first, as
# the ones a person reads and edits.
SHEET_FILES = ("index.html", "clusters_template.csv")
_CLUSTER_SHEET = re.compile(r"cluster_.+\.png")


def _earlier_sheets(sheets: Path) -> list[Path]:
    """What an earlier `--sheets` run left in the folder (cluster labels are only known after
    clustering, so every cluster_*.png counts)."""
    if not sheets.is_dir():
        return []
    found = [sheets / name for name in SHEET_FILES if (sheets / name).exists()]
    with os.scandir(sheets) as entries:
        found += sorted(Path(e.path) for e in entries if _CLUSTER_SHEET.fullmatch(e.name))
    return found


def _check_options(
    output: Path,
    sheets: Path | None,
    clusters: Path | None,
    batch_size: int,
    neighbours: int,
    overwrite: bool,
) -> None:
    """Everything that can be refused before the (long) pairing run starts."""
    from donkey.cli.preflight import check_writable
    from donkey.data.manifest import read_text_file
    from donkey.runtime.batch import check_folder_location

    if output.is_dir():
        raise DonkeyError(f"{output}: is a folder; -o takes the manifest file to write")
    if clusters is not None and same_file(output, clusters):
        raise DonkeyError(f"{output}: is the --clusters input; give the manifest another name")
    if output.is_file() and not _looks_like_manifest(output):
        # Even --overwrite replaces only a manifest, not a video of FOLDER or a config.
        raise DonkeyError(
            f"{output}: exists and is not a pairs manifest; remove it or give another -o"
        )
    if (output.exists() or output.is_symlink()) and not overwrite:
        # synth --pairs writes the exact pairs of its videos; the automatic ones replaced them.
        raise DonkeyError(f"{output}: exists; pass --overwrite to replace it, or give another -o")
    check_folder_location(output.parent)
    check_writable(output)
    if sheets is not None:
        check_folder_location(sheets)
        check_writable(sheets)
        template = sheets / "clusters_template.csv"
        if clusters is not None and same_file(template, clusters):
            # The hand-edited template, passed back: --sheets would write over it.
            raise DonkeyError(
                f"{clusters}: is the --clusters input, and --sheets {sheets} would rewrite it; "
                "copy it elsewhere or give another --sheets folder"
            )
        earlier = [] if overwrite else _earlier_sheets(sheets)
        if earlier:
            more = f" (and {len(earlier) - 1} more sheet files)" if len(earlier) > 1 else ""
            raise DonkeyError(
                f"{earlier[0]}: exists{more}; pass --overwrite to replace what an earlier "
                "--sheets run wrote, or give another --sheets folder"
            )
    if clusters is not None:
        read_text_file(clusters, "cluster CSV")
    if batch_size < 1:
        raise DonkeyError(f"--batch-size must be >= 1, got {batch_size}")
    if neighbours < 1:
        raise DonkeyError(f"--neighbours must be >= 1, got {neighbours}")


def _read_clusters(clusters: Path, videos: list[Path], folder: Path, split: str) -> dict[str, str]:
    """The manual cluster CSV, every name in it a video of the split: checked before the videos
    are read (a typo used to surface after all of them were, without the CSV's name)."""
    from donkey.data.pair_builder import read_clusters_csv

    try:
        assignment = read_clusters_csv(clusters)
    except (csv.Error, ValueError) as exc:
        raise DonkeyError(f"{clusters}: malformed cluster CSV ({exc})") from None
    _check_cluster_names(
        clusters,
        assignment,
        {v.name for v in videos},
        f"not in {folder}" if split == "all" else f"not in split {split!r} of {folder}",
    )
    return assignment


def _check_cluster_names(
    clusters: Path, assignment: dict[str, str], names: set[str], reason: str
) -> None:
    unknown = sorted(n for n in assignment if n not in names)
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise DonkeyError(f"{clusters}: names files {reason}: {', '.join(unknown[:3])}{more}")


def _remove_earlier_sheets(sheets: Path) -> None:
    """--overwrite: an earlier run's cluster_*.png go, so no sheet of a cluster that no longer
    exists lies beside the new index (the index and template are replaced in place)."""
    for path in _earlier_sheets(sheets):
        if path.name not in SHEET_FILES:
            path.unlink()


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
) -> None:
    """Cluster videos by movement, resample each pair's frames to matching poses (least-squares
    affine fit of keypoints, both directions), filter, and write a pairs manifest."""
    _check_numbers(
        {
            "--alpha": alpha,
            "--threshold": threshold,
            "--max-repeated": max_repeated,
            "--min-difference": min_difference,
            "--appearance-min": appearance_min,
            "--motion-max": motion_max,
        }
    )
    if not (0.0 <= val_fraction < 1.0):  # as train and eval take it
        raise DonkeyError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    _check_options(output, sheets, clusters, batch_size, neighbours, overwrite)
    start_torch()  # after the cheap refusals
    import numpy as np

    from donkey.app.models import load_model
    from donkey.data.contact_sheets import write_sheets
    from donkey.data.datasets import list_videos, load_videos, select_split
    from donkey.data.features import encoder_features, vgg11_features, video_keypoints
    from donkey.data.manifest import save_manifest
    from donkey.data.pair_builder import (
        ClusterParams,
        VideoKeypoints,
        auto_clusters,
        build_pairs,
        group_clusters,
    )
    from donkey.data.pairing import PairingParams, appearance_similarity

    started = time.perf_counter()
    files = select_split(list_videos(folder), split.value, val_fraction)
    if not files:
        raise DonkeyError(f"{folder}: no videos in split {split.value!r}")
    assignment = None
    if clusters is not None:
        assignment = _read_clusters(clusters, files, folder, split.value)
    params = PairingParams(
        max_repeated=max_repeated,
        alpha=alpha,
        threshold=threshold,
        min_difference=min_difference,
    )
    loaded = None
    if keypoints == "model" or model is not None:
        loaded = load_model(model, device=device, say=say)
    size = loaded.config.image_size if loaded is not None else 128
    with progress_bar() as bar:
        task = bar.add_task("reading", total=len(files))
        videos, skipped = load_videos(
            files, size, progress=lambda i, n: bar.update(task, completed=i)
        )
        for note in skipped:
            tagged("skipped", "yellow", note)
        if len(videos) < 2:
            raise DonkeyError(
                f"{folder}: pairing needs at least 2 readable videos, found {len(videos)}"
            )
        kept_files = [folder / v.name for v in videos]
        if keypoints == "synth":
            kps = _synth_keypoints(kept_files)
        else:
            task = bar.add_task("keypoints", total=sum(len(v.frames) for v in videos))
            kps = video_keypoints(
                loaded,
                [v.frames for v in videos],
                batch_size,
                lambda i, n: bar.update(task, completed=i),
            )
        entries = [VideoKeypoints(v.name, k) for v, k in zip(videos, kps)]
        frames = {v.name: v.frames for v in videos}
        candidates = None  # manual clusters: every pair inside a cluster
        if assignment is not None:
            _check_cluster_names(
                clusters, assignment, set(frames), "that could not be read (skipped above)"
            )
        else:
            first = np.stack([v.frames[0] for v in videos])
            if vgg11_weights is not None:
                features = vgg11_features(vgg11_weights, first)
            elif loaded is not None:
                features = encoder_features(loaded, first)
            else:
                features = None
                console.print(
                    "no --model or --vgg11-weights: clustering by motion only", style="yellow"
                )
            similarity = appearance_similarity(features) if features is not None else None
            task = bar.add_task("clustering", total=None)
            cluster_params = ClusterParams(
                appearance_min=appearance_min,
                motion_max=threshold if motion_max is None else motion_max,
                neighbours=neighbours,
            )
            assignment, candidates = auto_clusters(
                entries,
                similarity,
                params,
                cluster_params,
                lambda i, n: bar.update(task, completed=i, total=n),
            )
        task = bar.add_task("pairing", total=None)
        manifest, report = build_pairs(
            entries,
            assignment,
            params,
            folder.resolve(),
            lambda i, n: bar.update(task, completed=i, total=n),
            candidates,
            frames,
        )
    save_manifest(output, manifest)
    directions = {e.name: e.direction for e in entries}
    if sheets is not None:
        if overwrite:
            _remove_earlier_sheets(sheets)
        index = write_sheets(
            sheets, report.clusters or group_clusters(assignment), lambda n: frames[n], directions
        )
        out.print(f"contact sheets: {index}")
    _summary(report, directions, time.perf_counter() - started, output)
    cluster_options = {
        "--appearance-min": appearance_min,
        "--motion-max": threshold if motion_max is None else motion_max,
        "--neighbours": neighbours,
    }
    _next_steps(report, output, clusters is not None, params, cluster_options)


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
    """With pairs: how to use them. Without: which options let more pairs through, for the
    filters that rejected them, the most frequent first."""
    manifest = shlex.quote(str(output))
    if report.kept:
        out.print(
            f"next: donkey train small-donkey --pairs {manifest} --init CKPT -o RUN"
            "   # Donkey-Net fine-tune of a Monkey-Net run"
        )
        out.print(f"next: donkey eval --model CKPT --pairs {manifest}   # transfer L1")
        return
    if report.candidates == 0:
        if manual:
            out.print(
                "next: no cluster of --clusters holds two readable videos; "
                "put videos that move alike in one cluster"
            )
        else:
            now = ", ".join(f"{k} {v}" for k, v in cluster_options.items())
            out.print(
                f"next: no two videos were clustered together ({now}): lower --appearance-min, "
                "raise --motion-max or --neighbours, or cluster by hand: --sheets DIR writes "
                "clusters_template.csv for --clusters"
            )
        return
    advice = {
        "repeated": f"raise --max-repeated (now {params.max_repeated}; the share of frames used twice)",
        "score": f"raise --threshold (now {params.threshold}) or raise --alpha (now {params.alpha}; it rewards unique frames)",
        "duplicate": f"lower --min-difference (now {params.min_difference}; 0 keeps identical-looking pairs)",
        "keypoints": "keypoint counts differ between videos (--keypoints synth: body plans); "
        "use --keypoints model",
    }
    for reason, count in report.rejected_by.most_common():
        if reason in advice:
            out.print(f"next: {count} rejected for {reason}: {advice[reason]}")
