"""From per-video keypoints to a pairs manifest: clusters (manual CSV or automatic), frame
resampling of every pair inside a cluster, filters, and the rejected list."""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from donkey.data.manifest import Pair, PairsManifest, Rejected
from donkey.data.pairing import (
    PairingParams,
    matched_difference,
    motion_direction,
    rejection_reason,
    resample,
    residual_projectors,
)
from donkey.model.errors import DonkeyError

Progress = Callable[[int, int], None]


@dataclass
class VideoKeypoints:
    name: str
    keypoints: np.ndarray  # (T, K, 2) in [-1, 1]
    direction: str = ""

    def __post_init__(self) -> None:
        if not self.direction:
            self.direction = motion_direction(self.keypoints)


@dataclass
class ClusterParams:
    appearance_min: float = 0.8  # cosine similarity of first-frame features
    motion_max: float = 0.0  # coarse pairing score (residual - alpha * unique) on a few frames
    coarse_frames: int = 8
    neighbours: int = 5  # mutual nearest neighbours by motion score
    max_cluster: int = 48  # videos per contact sheet


@dataclass
class PairingReport:
    clusters: dict[str, list[str]] = field(default_factory=dict)
    candidates: int = 0
    kept: int = 0
    rejected_by: Counter = field(default_factory=Counter)


def read_clusters_csv(path: str | Path) -> dict[str, str]:
    """`file,cluster` rows (a header row is optional) -> {file name: cluster}."""
    path = Path(path)
    try:
        rows = list(csv.reader(path.read_text().splitlines()))
    except OSError as exc:
        raise DonkeyError(f"{path}: cannot read cluster CSV ({exc.strerror})") from None
    clusters = {}
    for i, row in enumerate(rows):
        if not row or row[0].startswith("#"):
            continue
        if len(row) < 2:
            raise DonkeyError(f"{path}: line {i + 1} needs file,cluster")
        if i == 0 and row[0].strip().lower() == "file":
            continue
        clusters[row[0].strip()] = row[1].strip()
    return clusters


def _subsample(k: np.ndarray, count: int) -> np.ndarray:
    if len(k) <= count:
        return k
    return k[np.linspace(0, len(k) - 1, count).round().astype(int)]


def _components(n: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        parent[find(a)] = find(b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def auto_clusters(
    videos: list[VideoKeypoints],
    appearance: np.ndarray | None,
    pairing: PairingParams,
    params: ClusterParams,
    progress: Progress | None = None,
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Direction split, then connected components of a mutual-nearest-neighbour graph.

    An edge joins two videos that look alike (first-frame feature similarity >=
    appearance_min; skipped without features), move alike (coarse pairing score on a few
    frames <= motion_max) and are among each other's `neighbours` best motion matches. The
    mutual-neighbour condition limits chaining (with plain threshold edges MGIF collapsed into
    one cluster per direction). Returns clusters (for contact sheets; components larger than
    `max_cluster` are cut into chunks) and the edges, which are the candidate pairs: a
    component can still chain, and its far ends should not be paired.
    """
    clusters: dict[str, str] = {}
    candidates: list[tuple[str, str]] = []
    by_direction: dict[str, list[int]] = {}
    for i, v in enumerate(videos):
        by_direction.setdefault(v.direction, []).append(i)
    coarse = [_subsample(v.keypoints, params.coarse_frames) for v in videos]
    projectors = [residual_projectors(k) for k in coarse]
    total = sum(len(m) * (len(m) - 1) // 2 for m in by_direction.values())
    done = 0
    for direction, members in sorted(by_direction.items()):
        n = len(members)
        score = np.full((n, n), np.inf)
        for a, b in itertools.combinations(range(n), 2):
            i, j = members[a], members[b]
            done += 1
            if appearance is None or appearance[i, j] >= params.appearance_min:
                r = resample(coarse[i], coarse[j], pairing, projectors[i], projectors[j])
                score[a, b] = score[b, a] = r.score
            if progress is not None and done % 2000 == 0:
                progress(done, total)
        k = min(params.neighbours, n - 1)
        nearest = np.argsort(score, axis=1)[:, :k] if k > 0 else np.zeros((n, 0), dtype=int)
        near = [set(row.tolist()) for row in nearest]
        edges = [
            (a, b)
            for a, b in itertools.combinations(range(n), 2)
            if score[a, b] <= params.motion_max and b in near[a] and a in near[b]
        ]
        candidates += [(videos[members[a]].name, videos[members[b]].name) for a, b in edges]
        label = 0
        for group in _components(n, edges):
            for start in range(0, len(group), params.max_cluster):
                for a in group[start : start + params.max_cluster]:
                    clusters[videos[members[a]].name] = f"{direction}-{label:03d}"
                label += 1
    if progress is not None:
        progress(total, total)
    return clusters, candidates


def group_clusters(clusters: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, label in sorted(clusters.items()):
        out.setdefault(label, []).append(name)
    return out


def build_pairs(
    videos: list[VideoKeypoints],
    clusters: dict[str, str],
    params: PairingParams,
    root: Path,
    progress: Progress | None = None,
    candidates: list[tuple[str, str]] | None = None,
    frames: Mapping[str, np.ndarray] | None = None,
) -> tuple[PairsManifest, PairingReport]:
    """Resamples and filters every pair of videos that share a cluster (or only `candidates`).

    With `frames` (name -> (T, H, W, 3) uint8, one size for all), pairs whose matched frames
    are nearly identical are rejected as duplicates.
    """
    by_name = {v.name: v for v in videos}
    unknown = sorted(n for n in clusters if n not in by_name)
    if unknown:
        raise DonkeyError(
            f"cluster CSV names files that are not in the folder: {', '.join(unknown[:3])}"
        )
    report = PairingReport(clusters=group_clusters(clusters))
    projectors = {v.name: residual_projectors(v.keypoints) for v in videos if v.name in clusters}
    jobs = (
        candidates
        if candidates is not None
        else [
            (a, b)
            for members in report.clusters.values()
            for a, b in itertools.combinations(members, 2)
        ]
    )
    report.candidates = len(jobs)
    pairs, rejected = [], []
    for n, (a, b) in enumerate(jobs):
        va, vb = by_name[a], by_name[b]
        if va.keypoints.shape[1:] != vb.keypoints.shape[1:]:
            rejected.append(Rejected(a, b, "different keypoint counts"))
            report.rejected_by["keypoints"] += 1
            continue
        r = resample(va.keypoints, vb.keypoints, params, projectors[a], projectors[b])
        reason = rejection_reason(r, params)
        if reason is None and frames is not None:
            difference = matched_difference(frames[a], frames[b], r.b_for_a)
            if difference < params.min_difference:
                reason = (
                    f"duplicate frames: mean difference {difference:.4f} < {params.min_difference}"
                )
        if reason is None:
            pairs.append(
                Pair(
                    a=a,
                    b=b,
                    b_for_a=r.b_for_a,
                    a_for_b=r.a_for_b,
                    residual=round(r.residual, 6),
                    unique=round(r.unique, 4),
                    score=round(r.score, 6),
                )
            )
        else:
            rejected.append(Rejected(a, b, reason))
            report.rejected_by[reason.split(" ")[0]] += 1
        if progress is not None:
            progress(n + 1, len(jobs))
    pairs.sort(key=lambda p: p.score)
    report.kept = len(pairs)
    manifest = PairsManifest(root=root, pairs=pairs, params=asdict(params), rejected=rejected)
    return manifest, report
