"""`donkey pairs`: pair videos by movement and resample their frames to matching poses
(Donkey-Net paper, 4.2), then write a pairs manifest (docs/architecture.md, "Pairs manifest").

`check_options` refuses what it can before the (long) run; `make_pairs` is the run. Both are
light to import: NumPy and PyTorch load inside the run."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from donkey.app.preflight import check_writable, same_file
from donkey.app.process import start_torch
from donkey.model.errors import DonkeyError

if TYPE_CHECKING:
    from donkey.data.pair_builder import PairingReport, VideoKeypoints
    from donkey.data.pairing import PairingParams
    from donkey.runtime.loader import LoadedModel

# progress(stage, done, total): each stage (reading, keypoints, clustering, pairing) is first
# announced with done 0; total None while unknown.
Progress = Callable[[str, int, int | None], None]
# say(label, message): "skipped" for an unreadable video, "warning" for a whole-line warning,
# and load_model's cache notes ("building", "rebuilding").
Say = Callable[[str, str], None]


@dataclass(frozen=True)
class PairsOptions:
    """`donkey pairs`'s options (its --help says what each one does)."""

    folder: Path
    output: Path
    model: str | None
    keypoints: str  # "model" or "synth"
    clusters: Path | None
    vgg11_weights: Path | None
    sheets: Path | None
    alpha: float
    threshold: float
    max_repeated: float
    min_difference: float
    appearance_min: float
    motion_max: float | None
    neighbours: int
    device: str
    batch_size: int
    split: str  # "all", "train" or "val"
    val_fraction: float
    overwrite: bool

    def numbers(self) -> dict[str, float | None]:
        return {
            "--alpha": self.alpha,
            "--threshold": self.threshold,
            "--max-repeated": self.max_repeated,
            "--min-difference": self.min_difference,
            "--appearance-min": self.appearance_min,
            "--motion-max": self.motion_max,
        }

    def cluster_options(self) -> dict[str, float]:
        """The automatic clustering's settings as options, for the advice when none clustered."""
        return {
            "--appearance-min": self.appearance_min,
            "--motion-max": self.threshold if self.motion_max is None else self.motion_max,
            "--neighbours": self.neighbours,
        }


@dataclass(frozen=True)
class PairsResult:
    report: PairingReport
    directions: dict[str, str]  # video name -> "left", "right" or "still"
    seconds: float
    sheets_index: Path | None  # the contact sheets' index.html, with --sheets
    params: PairingParams
    cluster_options: dict[str, float]


# --option -> (lowest, highest) it takes; every one must be a finite number.
NUMBER_RANGES = {
    "--alpha": (0.0, 100.0),
    "--threshold": (-100.0, 100.0),
    "--max-repeated": (0.0, 1.0),
    "--min-difference": (0.0, 1.0),
    "--appearance-min": (-1.0, 1.0),
    "--motion-max": (-100.0, 100.0),
}

# Every name contact_sheets.write_sheets writes into --sheets; index and template first, as
# the ones a person reads and edits.
SHEET_FILES = ("index.html", "clusters_template.csv")
_CLUSTER_SHEET = re.compile(r"cluster_.+\.png")


def check_options(options: PairsOptions) -> None:
    """Everything that can be refused before the (long) pairing run starts."""
    _check_numbers(options.numbers())
    if not (0.0 <= options.val_fraction < 1.0):  # as train and eval take it
        raise DonkeyError(f"--val-fraction must be in [0, 1), got {options.val_fraction}")
    _check_output(options.output, options.clusters, options.overwrite)
    if options.sheets is not None:
        _check_sheets(options.sheets, options.clusters, options.overwrite)
    if options.clusters is not None:
        from donkey.data.manifest import read_text_file

        read_text_file(options.clusters, "cluster CSV")
    if options.batch_size < 1:
        raise DonkeyError(f"--batch-size must be >= 1, got {options.batch_size}")
    if options.neighbours < 1:
        raise DonkeyError(f"--neighbours must be >= 1, got {options.neighbours}")


def _check_numbers(values: dict[str, float | None]) -> None:
    for option, value in values.items():
        if value is None:
            continue
        low, high = NUMBER_RANGES[option]
        if not math.isfinite(value) or not low <= value <= high:
            raise DonkeyError(f"{option} must be a number from {low:g} to {high:g}, got {value}")


def _check_output(output: Path, clusters: Path | None, overwrite: bool) -> None:
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


def _check_sheets(sheets: Path, clusters: Path | None, overwrite: bool) -> None:
    from donkey.runtime.batch import check_folder_location

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


def _earlier_sheets(sheets: Path) -> list[Path]:
    """What an earlier `--sheets` run left in the folder (cluster labels are only known after
    clustering, so every cluster_*.png counts)."""
    if not sheets.is_dir():
        return []
    found = [sheets / name for name in SHEET_FILES if (sheets / name).exists()]
    with os.scandir(sheets) as entries:
        found += sorted(Path(e.path) for e in entries if _CLUSTER_SHEET.fullmatch(e.name))
    return found


def _remove_earlier_sheets(sheets: Path) -> None:
    """--overwrite: an earlier run's cluster_*.png go, so no sheet of a cluster that no longer
    exists lies beside the new index (the index and template are replaced in place)."""
    for path in _earlier_sheets(sheets):
        if path.name not in SHEET_FILES:
            path.unlink()


def make_pairs(options: PairsOptions, progress: Progress, say: Say) -> PairsResult:
    """Clusters the videos of the split by movement (or by --clusters), resamples each pair's
    frames to matching poses, filters, and writes the manifest (and --sheets).

    Call `check_options` first: this trusts what it checked."""
    start_torch()
    from donkey.app.models import load_model
    from donkey.data.datasets import list_videos, load_videos, select_split
    from donkey.data.manifest import save_manifest
    from donkey.data.pair_builder import VideoKeypoints, build_pairs
    from donkey.data.pairing import PairingParams

    o = options
    started = time.perf_counter()
    files = select_split(list_videos(o.folder), o.split, o.val_fraction)
    if not files:
        raise DonkeyError(f"{o.folder}: no videos in split {o.split!r}")
    assignment = None
    if o.clusters is not None:
        assignment = _read_clusters(o.clusters, files, o.folder, o.split)
    params = PairingParams(
        max_repeated=o.max_repeated,
        alpha=o.alpha,
        threshold=o.threshold,
        min_difference=o.min_difference,
    )
    loaded = None
    if o.keypoints == "model" or o.model is not None:
        loaded = load_model(o.model, device=o.device, say=say)
    size = loaded.config.image_size if loaded is not None else 128
    progress("reading", 0, len(files))
    videos, skipped = load_videos(files, size, progress=lambda i, n: progress("reading", i, n))
    for note in skipped:
        say("skipped", note)
    if len(videos) < 2:
        raise DonkeyError(
            f"{o.folder}: pairing needs at least 2 readable videos, found {len(videos)}"
        )
    kps = _keypoints(o, loaded, videos, progress)
    entries = [VideoKeypoints(v.name, k) for v, k in zip(videos, kps)]
    frames = {v.name: v.frames for v in videos}
    candidates = None  # manual clusters: every pair inside a cluster
    if assignment is not None:
        _check_cluster_names(
            o.clusters, assignment, set(frames), "that could not be read (skipped above)"
        )
    else:
        assignment, candidates = _auto_clusters(o, loaded, videos, entries, params, progress, say)
    progress("pairing", 0, None)
    manifest, report = build_pairs(
        entries,
        assignment,
        params,
        o.folder.resolve(),
        lambda i, n: progress("pairing", i, n),
        candidates,
        frames,
    )
    save_manifest(o.output, manifest)
    directions = {e.name: e.direction for e in entries}
    index = None
    if o.sheets is not None:
        index = _write_sheets(o, report, assignment, frames, directions)
    return PairsResult(
        report=report,
        directions=directions,
        seconds=time.perf_counter() - started,
        sheets_index=index,
        params=params,
        cluster_options=o.cluster_options(),
    )


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


def _keypoints(
    options: PairsOptions, loaded: LoadedModel | None, videos: list, progress: Progress
) -> list:
    """Each video's keypoints, (T, K, 2) in [-1, 1]: the detector's, or --keypoints synth's
    pose JSON."""
    if options.keypoints == "synth":
        return _synth_keypoints([options.folder / v.name for v in videos])
    from donkey.data.features import video_keypoints

    total = sum(len(v.frames) for v in videos)
    progress("keypoints", 0, total)
    return video_keypoints(
        loaded,
        [v.frames for v in videos],
        options.batch_size,
        lambda i, n: progress("keypoints", i, n),
    )


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


def _auto_clusters(
    options: PairsOptions,
    loaded: LoadedModel | None,
    videos: list,
    entries: list[VideoKeypoints],
    params: PairingParams,
    progress: Progress,
    say: Say,
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Clusters by first-frame appearance (VGG-11, else the model's encoder, else not at all)
    and coarse motion; returns the assignment and the candidate pairs."""
    import numpy as np

    from donkey.data.features import encoder_features, vgg11_features
    from donkey.data.pair_builder import ClusterParams, auto_clusters
    from donkey.data.pairing import appearance_similarity

    first = np.stack([v.frames[0] for v in videos])
    if options.vgg11_weights is not None:
        features = vgg11_features(options.vgg11_weights, first)
    elif loaded is not None:
        features = encoder_features(loaded, first)
    else:
        features = None
        say("warning", "no --model or --vgg11-weights: clustering by motion only")
    similarity = appearance_similarity(features) if features is not None else None
    progress("clustering", 0, None)
    cluster_params = ClusterParams(
        appearance_min=options.appearance_min,
        motion_max=options.threshold if options.motion_max is None else options.motion_max,
        neighbours=options.neighbours,
    )
    return auto_clusters(
        entries,
        similarity,
        params,
        cluster_params,
        lambda i, n: progress("clustering", i, n),
    )


def _write_sheets(
    options: PairsOptions,
    report: PairingReport,
    assignment: dict[str, str],
    frames: dict,
    directions: dict[str, str],
) -> Path:
    from donkey.data.contact_sheets import write_sheets
    from donkey.data.pair_builder import group_clusters

    if options.overwrite:
        _remove_earlier_sheets(options.sheets)
    return write_sheets(
        options.sheets,
        report.clusters or group_clusters(assignment),
        lambda n: frames[n],
        directions,
    )


def next_steps(
    report: PairingReport,
    output: Path,
    manual: bool,
    params: PairingParams,
    cluster_options: dict[str, float],
) -> list[str]:
    """With pairs: how to use them. Without: which options let more pairs through, for the
    filters that rejected them, the most frequent first."""
    manifest = shlex.quote(str(output))
    if report.kept:
        return [
            f"next: donkey train small-donkey --pairs {manifest} --init CKPT -o RUN"
            "   # Donkey-Net fine-tune of a Monkey-Net run",
            f"next: donkey eval --model CKPT --pairs {manifest}   # transfer L1",
        ]
    if report.candidates == 0:
        if manual:
            return [
                "next: no cluster of --clusters holds two readable videos; "
                "put videos that move alike in one cluster"
            ]
        now = ", ".join(f"{k} {v}" for k, v in cluster_options.items())
        return [
            f"next: no two videos were clustered together ({now}): lower --appearance-min, "
            "raise --motion-max or --neighbours, or cluster by hand: --sheets DIR writes "
            "clusters_template.csv for --clusters"
        ]
    advice = {
        "repeated": f"raise --max-repeated (now {params.max_repeated}; the share of frames used twice)",
        "score": f"raise --threshold (now {params.threshold}) or raise --alpha (now {params.alpha}; it rewards unique frames)",
        "duplicate": f"lower --min-difference (now {params.min_difference}; 0 keeps identical-looking pairs)",
        "keypoints": "keypoint counts differ between videos (--keypoints synth: body plans); "
        "use --keypoints model",
    }
    return [
        f"next: {count} rejected for {reason}: {advice[reason]}"
        for reason, count in report.rejected_by.most_common()
        if reason in advice
    ]
