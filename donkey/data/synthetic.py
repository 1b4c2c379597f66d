"""Synthetic creature videos with known poses, and exact Donkey-Net pairs.

A motion (gait, speed, phase, facing, drift) yields one Pose per frame; a body plan yields
looks. Two different plans driven by the same motion are a perfect pair: same pose at every
frame, different shape. Everything derives from one seed, so output files are reproducible
byte for byte.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from donkey.core.vocab import GAITS
from donkey.data.creature import (
    KEYPOINT_NAMES,
    BodyPlan,
    Pose,
    joints,
    keypoints,
    random_plan,
    render,
)
from donkey.data.manifest import Pair, PairsManifest, save_manifest
from donkey.data.writers import write_video
from donkey.model.files import atomic_output

# Per-leg phase offsets (fractions of a cycle) for legs 0-3: front near/far, back near/far.
_LEG_PHASES = {
    "walk": (0.0, 0.5, 0.25, 0.75),
    "gallop": (0.0, 0.1, 0.5, 0.6),
    "hop": (0.0, 0.15, 0.35, 0.5),
    "flap": (0.0, 0.5, 0.0, 0.5),
}
_HIP_AMPLITUDE = {"walk": 0.45, "gallop": 0.75, "hop": 0.6, "flap": 0.25}


@dataclass
class Motion:
    gait: str
    legs: int
    frames: int
    period: float  # frames per gait cycle
    phase: float
    facing: int
    drift: float  # whole-body translation per frame (model units, along the facing)
    bob: float
    start_x: float
    start_y: float


def random_motion(rng: np.random.Generator, frames: int, gaits: tuple[str, ...] = GAITS) -> Motion:
    gait = str(rng.choice(list(gaits)))
    legs = 2 if gait == "hop" and rng.random() < 0.5 else int(rng.choice([2, 4], p=[0.25, 0.75]))
    facing = int(rng.choice([-1, 1]))
    drift = float(rng.uniform(0.0, 0.012))
    return Motion(
        gait=gait,
        legs=legs,
        frames=frames,
        period=float(rng.uniform(6, 14)),
        phase=float(rng.uniform(0, 1)),
        facing=facing,
        drift=drift,
        bob=float(rng.uniform(0.01, 0.04)) * (3 if gait == "hop" else 1),
        start_x=float(-facing * drift * frames / 2 + rng.uniform(-0.05, 0.05)),
        start_y=float(rng.uniform(-0.2, -0.08)),
    )


def pose_at(motion: Motion, t: int) -> Pose:
    """The pose of frame t: periodic joint-angle curves plus translation."""
    cycle = 2 * math.pi * (t / motion.period + motion.phase)
    amp = _HIP_AMPLITUDE[motion.gait]
    hips, knees = [], []
    for offset in _LEG_PHASES[motion.gait]:
        angle = cycle + 2 * math.pi * offset
        hips.append(amp * math.sin(angle))
        knees.append(
            0.2 + 0.6 * max(0.0, math.cos(angle)) * (1.3 if motion.gait == "gallop" else 1.0)
        )
    lift = abs(math.sin(cycle)) if motion.gait == "hop" else math.sin(2 * cycle) * 0.5
    pitch = 0.12 * math.sin(cycle) if motion.gait == "gallop" else 0.03 * math.sin(cycle)
    return Pose(
        x=motion.start_x + motion.facing * motion.drift * t,
        y=motion.start_y - motion.bob * lift,
        pitch=pitch,
        facing=motion.facing,
        hips=tuple(hips),  # type: ignore[arg-type]
        knees=tuple(knees),  # type: ignore[arg-type]
        wing=0.3
        + (0.9 * (1 + math.sin(cycle)) if motion.gait == "flap" else 0.2 * math.sin(cycle)),
        tail=0.3 * math.sin(cycle + 1.0),
        head=0.08 * math.sin(cycle + 0.5),
    )


def render_video(
    plan: BodyPlan, motion: Motion, size: int, transparent: bool = False
) -> tuple[np.ndarray, list[dict]]:
    """Frames (T, size, size, 3) and per-frame pose records (angles, joints, keypoints).

    `transparent`: (T, size, size, 4) RGBA frames, alpha the creature's exact mask (see
    creature.render)."""
    frames, records = [], []
    for t in range(motion.frames):
        pose = pose_at(motion, t)
        joint_map = joints(plan, pose)
        frames.append(render(plan, pose, size, transparent))
        records.append(
            {
                "pose": {
                    k: (
                        round(v, 6)
                        if isinstance(v, float)
                        else [round(a, 6) for a in v]
                        if isinstance(v, tuple)
                        else v
                    )
                    for k, v in asdict(pose).items()
                },
                "joints": {
                    k: [round(x, 5), round(y, 5)] for k, (x, y) in sorted(joint_map.items())
                },
                "keypoints": keypoints(joint_map),
            }
        )
    return np.stack(frames), records


def _write_sidecar(
    path: Path, plan: BodyPlan, motion: Motion, records: list[dict], seed: int
) -> None:
    payload = {
        "seed": seed,
        "motion": asdict(motion),
        "plan": asdict(plan),
        "keypoint_names": list(KEYPOINT_NAMES),
        "frames": records,
    }
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(payload, sort_keys=True))


def synthesize(
    out_dir: str | Path,
    count: int,
    size: int = 128,
    seed: int = 0,
    pairs: bool = False,
    frames: tuple[int, int] = (16, 32),
    fmt: str = ".gif",
    progress: Callable[[int, int], None] | None = None,
    gaits: tuple[str, ...] = GAITS,
    transparent: bool = False,
) -> list[Path]:
    """Writes `count` videos (or `count` pairs) with pose JSON beside each; returns the videos.

    `gaits` limits the motions drawn (walk, gallop, hop, flap). `transparent`: the creatures
    on a transparent background (RGBA GIFs or PNG strips, alpha the creature's exact mask);
    the same seed draws the same creatures and motions either way.

    With `pairs`, also writes OUT_DIR/pairs.json (identity frame mappings).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    manifest_pairs = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        length = int(rng.integers(frames[0], frames[1] + 1))
        motion = random_motion(rng, length, gaits)
        members = ("a", "b") if pairs else ("",)
        names = []
        for member in members:
            plan = random_plan(rng, motion.legs)
            video, records = render_video(plan, motion, size, transparent)
            stem = f"pair_{i:04d}_{member}" if pairs else f"creature_{i:04d}"
            path = write_video(out / f"{stem}{fmt}", video, fps=12.0)
            _write_sidecar(out / f"{stem}.json", plan, motion, records, seed)
            written.append(path)
            names.append(path.name)
        if pairs:
            identity = list(range(length))
            manifest_pairs.append(
                Pair(
                    a=names[0],
                    b=names[1],
                    b_for_a=identity,
                    a_for_b=identity,
                    residual=0.0,
                    unique=1.0,
                    score=0.0,
                )
            )
        if progress is not None:
            progress(i + 1, count)
    if pairs:
        save_manifest(
            out / "pairs.json",
            PairsManifest(
                root=Path("."),
                pairs=manifest_pairs,
                params={"source": "donkey synth", "seed": seed, "size": size},
            ),
        )
    return written


def read_sidecar(video: str | Path) -> dict:
    """The pose JSON written beside a synthetic video."""
    path = Path(video).with_suffix(".json")
    return json.loads(path.read_text())
