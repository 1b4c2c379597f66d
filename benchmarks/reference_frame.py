"""Relative motion from a chosen reference frame: how much it helps, measured.

    python benchmarks/reference_frame.py [--videos N] [--synthetic N] [--frames N]

Renders with the bundled model on the CPU (torch) through the Animator in absolute mode, fed
with driving keypoints computed here by donkey/runtime/reference.py:

a. real MGIF videos v of the validation split with an exact identity change I
   (data/identity_change.py): driving v, source I(v)[m], target I(v), for m = 0 and m = the
   middle frame; L1 of identity (output = source), reference first (0), auto
   (pick_reference; also without its covariance term), oracle (m) and absolute mode;
b. synthetic pairs (data/synthetic.py): driving creature A, source creature B posed like a
   random frame r, target B's frames; same columns;
c. smoothing the driving track (sigma 0, 0.5, 1, 2 frames) on (a) with m = middle, auto;
d. motion scale 1, 0.75, 0.5 on the same;
e. seconds per frame each option adds;
f. the picker alone, over every source frame m of (a) and (b), without rendering: how often
   it finds m, and the keypoint error of the motion it gives against the target's keypoints.

Writes benchmarks/reference-frame.json, reference-frame.md and reference-frame.png (a contact
sheet), and prints the tables. Fixed seeds: a rerun gives the same numbers up to float
rounding. `--split train` measures on training videos instead (to choose settings without
looking at the validation videos) and writes reference-frame-train.json/.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from donkey.app.models import load_model
from donkey.data.datasets import split_fraction
from donkey.data.frames import frames_to_tensor
from donkey.data.identity_change import IdentityChange, apply_identity
from donkey.data.media import read_video
from donkey.data.synthetic import random_motion, random_plan, render_video
from donkey.runtime.animator import Animator, DrivingState, SourceState
from donkey.runtime.motion import relative_keypoints
from donkey.runtime.reference import (
    layout_distance,
    pick_reference,
    relative_motion,
    smooth_track,
)

HERE = Path(__file__).resolve().parent
DATA = Path("/work/shared/data/mgif128/train")
SIZE = 128
SEED = 2027
MIN_FRAMES = 16
VAL_FRACTION = 0.1  # training's validation split: split_fraction(name) < 0.1
SIGMAS = (0.0, 0.5, 1.0, 2.0)
SCALES = (1.0, 0.75, 0.5)
MACHINE = "2-core CPU VM"
SHEET_CLIP = "00370.png"  # a black horse galloping (validation split, 16 frames)
SHEET_FRAMES = 6
METHODS = ("identity", "first", "auto", "auto_no_cov", "oracle", "absolute")


# ---------------------------------------------------------------- rendering and metrics


@dataclass
class Renderer:
    """Renders final driving keypoints through the Animator, once per distinct set."""

    animator: Animator
    seconds: float = 0.0
    frames: int = 0
    cache: dict = field(default_factory=dict)

    def render(self, source: SourceState, mean: Tensor, var: Tensor) -> Tensor:
        """(T, 3, S, S) in [0, 1]; the cache holds one source's renders (see `forget`)."""
        key = (mean.numpy().tobytes(), var.numpy().tobytes())
        if key not in self.cache:
            start = time.perf_counter()
            out = self.animator.animate(source, DrivingState(mean, var))
            self.seconds += time.perf_counter() - start
            self.frames += out.shape[0]
            self.cache[key] = out
        return self.cache[key]

    def forget(self) -> None:
        self.cache.clear()


def l1(out: Tensor, target: Tensor) -> float:
    return float((out - target).abs().mean())


def temporal_error(out: Tensor, target: Tensor) -> float:
    """mean |(out[t] - out[t-1]) - (gt[t] - gt[t-1])|: flicker (or lag) the target lacks."""
    return float(((out[1:] - out[:-1]) - (target[1:] - target[:-1])).abs().mean())


def evaluate_pair(
    renderer: Renderer,
    source: SourceState,
    driving: DrivingState,
    target: Tensor,
    oracle: int,
    extras: bool = False,
) -> dict:
    """One source against one driving video: L1 and temporal error of every method.
    `extras`: also smoothing and motion scales (reference auto)."""
    renderer.forget()
    s_mean, s_var = source.kp_mean, source.kp_var
    d_mean, d_var = driving.kp_mean, driving.kp_var
    auto = pick_reference(s_mean, s_var, d_mean, d_var)
    auto_pos = pick_reference(s_mean, s_var, d_mean, d_var, use_covariance=False)
    row: dict = {"oracle_frame": oracle, "auto_pick": auto, "auto_no_cov_pick": auto_pos}
    row["distance"] = [round(d, 5) for d in layout_distance(s_mean, s_var, d_mean, d_var).tolist()]
    still = source.image.expand_as(target)
    row["identity"] = {"l1": l1(still, target), "temporal": temporal_error(still, target)}

    def score(name: str, mean: Tensor, var: Tensor) -> None:
        out = renderer.render(source, mean, var)
        row[name] = {"l1": l1(out, target), "temporal": temporal_error(out, target)}

    for name, reference in (("first", 0), ("auto", auto), ("auto_no_cov", auto_pos)):
        score(name, *relative_motion(s_mean, s_var, d_mean, d_var, reference))
    score("oracle", *relative_motion(s_mean, s_var, d_mean, d_var, oracle))
    score("absolute", d_mean, d_var)
    if extras:
        for sigma in SIGMAS[1:]:
            smooth = smooth_track(d_mean, d_var, sigma)
            score(f"smooth_{sigma:g}", *relative_motion(s_mean, s_var, *smooth, auto))
        for scale in SCALES[1:]:
            score(f"scale_{scale:g}", *relative_motion(s_mean, s_var, d_mean, d_var, auto, scale))
    return row


@dataclass
class PickerStudy:
    """The picker over every source frame m, without rendering. Keypoint error: mean
    |relative motion from the picked frame - keypoints detected on the target frames|."""

    pairs: int = 0
    sources: int = 0
    exact: dict = field(default_factory=dict)
    within_1: dict = field(default_factory=dict)
    kp_error: dict = field(default_factory=dict)

    def add(self, driving: DrivingState, target: DrivingState) -> None:
        """driving: the driving video's keypoints; target: those of every target frame
        (the source posed like frame m is target frame m)."""
        self.pairs += 1
        d_mean, d_var = driving.kp_mean, driving.kp_var
        for m in range(len(driving)):
            self.sources += 1
            s_mean, s_var = target.kp_mean[m : m + 1], target.kp_var[m : m + 1]
            picks = {
                "first": 0,
                "positions": pick_reference(s_mean, s_var, d_mean, d_var, use_covariance=False),
                "positions + covariance": pick_reference(s_mean, s_var, d_mean, d_var),
                "oracle": m,
            }
            for name, pick in picks.items():
                mean, _ = relative_motion(s_mean, s_var, d_mean, d_var, pick)
                error = float((mean - target.kp_mean).abs().mean())
                self.exact[name] = self.exact.get(name, 0) + (pick == m)
                self.within_1[name] = self.within_1.get(name, 0) + (abs(pick - m) <= 1)
                self.kp_error[name] = self.kp_error.get(name, 0.0) + error

    def summary(self) -> dict:
        oracle = self.kp_error["oracle"]
        return {
            "pairs": self.pairs,
            "sources": self.sources,
            "measures": {
                name: {
                    "exact": self.exact[name] / self.sources,
                    "within_1": self.within_1[name] / self.sources,
                    "kp_error": self.kp_error[name] / self.sources,
                    "kp_error_over_oracle": self.kp_error[name] / oracle,
                }
                for name in self.kp_error
            },
        }


# ---------------------------------------------------------------- data


def split_videos(split: str, count: int, max_frames: int) -> list[tuple[str, np.ndarray]]:
    """The first `count` videos of `split` with >= MIN_FRAMES frames, by name, each cut to its
    first `max_frames` frames."""
    files = sorted(
        p for p in DATA.glob("*.png") if (split_fraction(p.name) < VAL_FRACTION) == (split == "val")
    )
    videos = []
    for path in files:
        if len(videos) == count:
            break
        frames = read_video(path, SIZE).frames
        if len(frames) >= MIN_FRAMES:
            videos.append((path.name, frames[:max_frames]))
    return videos


def identity_pair(index: int, frames: np.ndarray) -> np.ndarray:
    """I(v): one fixed identity change (strength 1, the default), seeded per video."""
    return apply_identity(frames, IdentityChange.random([SEED, index]))


def synthetic_pair(index: int, max_frames: int, offset: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Creatures A and B doing the same motion, and the frame r that B's source is posed
    like: (A frames, B frames, r)."""
    rng = np.random.default_rng([SEED, offset + index])
    length = int(rng.integers(MIN_FRAMES, max_frames + 1))
    motion = random_motion(rng, length)
    a, _ = render_video(random_plan(rng, motion.legs), motion, SIZE)
    b, _ = render_video(random_plan(rng, motion.legs), motion, SIZE)
    return a, b, int(rng.integers(0, length))


# ---------------------------------------------------------------- summaries and timing


def mean_of(rows: list[dict], name: str, key: str = "l1") -> float:
    return float(np.mean([r[name][key] for r in rows]))


def block(rows: list[dict]) -> dict:
    return {
        "pairs": len(rows),
        "l1": {n: mean_of(rows, n) for n in METHODS},
        "temporal": {n: mean_of(rows, n, "temporal") for n in METHODS},
        "picks": {
            "auto_is_oracle": float(np.mean([r["auto_pick"] == r["oracle_frame"] for r in rows])),
            "auto_within_1": float(
                np.mean([abs(r["auto_pick"] - r["oracle_frame"]) <= 1 for r in rows])
            ),
            "auto_no_cov_is_oracle": float(
                np.mean([r["auto_no_cov_pick"] == r["oracle_frame"] for r in rows])
            ),
            "auto_is_first": float(np.mean([r["auto_pick"] == 0 for r in rows])),
        },
    }


def seconds_per_call(fn, repeats: int = 50, rounds: int = 20) -> float:
    """The best of `rounds` means over `repeats` calls (the least disturbed by other work)."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        best = min(best, (time.perf_counter() - start) / repeats)
    return best


def option_costs(source: SourceState, driving: DrivingState, render_seconds: float) -> dict:
    """Seconds per driving frame of each keypoint step, next to a render's."""
    s_mean, s_var, d_mean, d_var = source.kp_mean, source.kp_var, driving.kp_mean, driving.kp_var
    frames = d_mean.shape[0]
    steps = {
        "relative_keypoints (today)": lambda: relative_keypoints(
            s_mean, s_var, d_mean, d_var, d_mean[:1], d_var[:1]
        ),
        "pick_reference": lambda: pick_reference(s_mean, s_var, d_mean, d_var),
        "relative_motion (reference, scale 0.75)": lambda: relative_motion(
            s_mean, s_var, d_mean, d_var, frames // 2, 0.75
        ),
    }
    for sigma in SIGMAS[1:]:
        steps[f"smooth_track (sigma {sigma:g})"] = lambda s=sigma: smooth_track(d_mean, d_var, s)
    costs = {"render (keypoints + dense motion + generator)": render_seconds}
    costs.update({name: seconds_per_call(fn) / frames for name, fn in steps.items()})
    return {"frames_in_track": frames, "seconds_per_frame": costs}


# ---------------------------------------------------------------- contact sheet


def to_uint8(frames: Tensor) -> np.ndarray:
    return (frames.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()


def make_sheet(animator: Animator, name: str, frames: np.ndarray, index: int) -> dict:
    """Rows: driving v, target I(v), relative from frame 0, from the picked frame; the source
    I(v)[middle] in the first column; SHEET_FRAMES frames across the clip."""
    changed = identity_pair(index, frames)
    middle = len(frames) // 2
    source = animator.prepare_source(frames_to_tensor(changed[middle : middle + 1]))
    driving = animator.driving_keypoints(frames_to_tensor(frames))
    s_mean, s_var, d_mean, d_var = source.kp_mean, source.kp_var, driving.kp_mean, driving.kp_var
    auto = pick_reference(s_mean, s_var, d_mean, d_var)
    target = frames_to_tensor(changed)
    outputs, scores = {}, {}
    for label, reference in (("first", 0), ("auto", auto)):
        mean, var = relative_motion(s_mean, s_var, d_mean, d_var, reference)
        out = animator.animate(source, DrivingState(mean, var))
        outputs[label], scores[label] = to_uint8(out), l1(out, target)
    picks = np.linspace(0, len(frames) - 1, SHEET_FRAMES).round().astype(int).tolist()
    rows = [
        ("driving v", frames[picks]),
        ("target I(v)", changed[picks]),
        (f"first (ref 0)\nL1 {scores['first']:.4f}", outputs["first"][picks]),
        (f"auto (ref {auto})\nL1 {scores['auto']:.4f}", outputs["auto"][picks]),
    ]
    label_w, gap, top = 100, 4, 16
    sheet = Image.new(
        "RGB",
        (label_w + (SHEET_FRAMES + 1) * (SIZE + gap), top + len(rows) * (SIZE + gap)),
        (255, 255, 255),
    )
    draw = ImageDraw.Draw(sheet)
    draw.text((label_w + 4, 2), f"source I(v)[{middle}]", fill=(0, 0, 0))
    for c, t in enumerate(picks):
        draw.text((label_w + (c + 1) * (SIZE + gap) + 4, 2), f"frame {t}", fill=(0, 0, 0))
    for r, (label, strip) in enumerate(rows):
        y = top + r * (SIZE + gap)
        for i, line in enumerate(label.split("\n")):
            draw.text((4, y + 4 + 12 * i), line, fill=(0, 0, 0))
        if r >= 2:  # the source, beside the outputs made from it
            sheet.paste(Image.fromarray(changed[middle]), (label_w, y))
        for c, frame in enumerate(strip):
            sheet.paste(Image.fromarray(frame), (label_w + (c + 1) * (SIZE + gap), y))
    sheet.save(HERE / "reference-frame.png")
    return {
        "clip": name,
        "source_frame": middle,
        "auto_pick": auto,
        "frames_shown": picks,
        "l1": scores,
    }


# ---------------------------------------------------------------- report


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def markdown(result: dict) -> str:
    cfg, real, synth = result["config"], result["real"], result["synthetic"]
    settings = (
        ("real, m = 0", real["m0"]),
        ("real, m = middle", real["middle"]),
        ("synthetic, r random", synth),
    )
    l1_rows = [
        [label, str(b["pairs"])] + [f"{b['l1'][n]:.4f}" for n in METHODS] for label, b in settings
    ]
    temporal_rows = [
        [label, str(b["pairs"])] + [f"{b['temporal'][n]:.4f}" for n in METHODS]
        for label, b in settings
    ]
    pick_rows = [
        [
            label,
            f"{b['picks']['auto_is_oracle']:.0%}",
            f"{b['picks']['auto_within_1']:.0%}",
            f"{b['picks']['auto_no_cov_is_oracle']:.0%}",
            f"{b['picks']['auto_is_first']:.0%}",
        ]
        for label, b in settings
    ]
    study_rows = []
    for label, study in (
        ("real", result["picker"]["real"]),
        ("synthetic", result["picker"]["synthetic"]),
    ):
        for name, s in study["measures"].items():
            study_rows.append(
                [
                    f"{label} ({study['pairs']} videos, {study['sources']} sources)",
                    name,
                    f"{s['exact']:.0%}",
                    f"{s['within_1']:.0%}",
                    f"{s['kp_error']:.4f}",
                    f"{s['kp_error_over_oracle']:.2f}",
                ]
            )
    target_rows = [
        [k, f"{v['value']:+.1%}", v["goal"], "yes" if v["met"] else "**no**"]
        for k, v in result["targets"].items()
    ]
    smooth_rows = [
        [f"{s['sigma']:g}", f"{s['l1']:.4f}", f"{s['temporal']:.4f}"] for s in result["smoothing"]
    ]
    scale_rows = [
        [f"{s['motion_scale']:g}", f"{s['l1']:.4f}", f"{s['temporal']:.4f}"]
        for s in result["motion_scale"]
    ]
    timing = result["timing"]
    time_rows = [[k, f"{v * 1e6:,.1f}"] for k, v in timing["seconds_per_frame"].items()]
    split = "validation" if cfg["split"] == "val" else "training"
    sheet = result.get("sheet")
    sheet_text = (
        f"\n`reference-frame.png`: clip {sheet['clip']}, source I(v)[{sheet['source_frame']}], "
        f"auto picked frame {sheet['auto_pick']}; L1 first {sheet['l1']['first']:.4f}, auto "
        f"{sheet['l1']['auto']:.4f}.\n"
        if sheet
        else ""
    )
    return f"""# Relative motion from a chosen reference frame

`python benchmarks/reference_frame.py --split {cfg["split"]} --videos {cfg["videos"]} --synthetic {cfg["synthetic"]} --frames {cfg["max_frames"]}`
took {result["run_seconds"] / 60:.1f} min on the {MACHINE} ({cfg["cpu"]}; torch {cfg["torch"]}, {cfg["threads"]}
threads, other work running beside it). Model: the bundled `donkey/assets/default.safetensors`,
fp32, 128x128, K = {cfg["keypoints"]}. Seed {SEED}.

Real pairs: the first {cfg["videos"]} {split} MGIF videos with >= {MIN_FRAMES} frames (by name), cut to their first
{cfg["max_frames"]} frames; one identity change per video, `IdentityChange.random([{SEED}, i])` at strength 1;
driving v, source I(v)[m], target I(v). Synthetic pairs: two creatures doing the same motion
(`data/synthetic.py`); driving A, source B at a random frame r, target B. Every output frame
counts (the reference frame too).

Methods: identity = the source at every frame; first = relative motion from driving frame 0
(today's `relative`); auto = from `pick_reference` (positions and covariances); auto_no_cov = positions
only; oracle = from frame m (r); absolute = the driving's own keypoints.

## L1 (mean absolute error, RGB in [0, 1], 128x128)

{table(["setting", "pairs", *METHODS], l1_rows)}

## Temporal error (mean |(out[t] - out[t-1]) - (gt[t] - gt[t-1])|)

{table(["setting", "pairs", *METHODS], temporal_rows)}

## Targets

{table(["target", "measured", "goal", "met"], target_rows)}

## The picked frames

{table(["setting", "auto = m", "auto within 1 of m", "auto_no_cov = m", "auto = 0"], pick_rows)}

## The picker alone, every source frame m (no rendering)

The source posed like each frame m in turn; keypoint error = mean |relative motion from the picked
frame - the keypoints detected on the target frames| (normalised coordinates).

{table(["pairs", "measure", "picks m", "within 1 of m", "keypoint error", "/ oracle's"], study_rows)}

## Smoothing the driving track (real pairs, m = middle, reference auto)

{table(["sigma (frames)", "L1", "temporal error"], smooth_rows)}

## Motion scale (real pairs, m = middle, reference auto)

{table(["motion scale", "L1", "temporal error"], scale_rows)}

## Cost per driving frame (microseconds; a track of {timing["frames_in_track"]} frames, K = {cfg["keypoints"]})

{table(["step", "us / frame"], time_rows)}

The render is this run's mean over its renders (Animator batch 8). The keypoint steps are the best of
20 rounds of 50 calls (the machine was shared); they run once per driving video, on T x K keypoints.
{sheet_text}"""


# ---------------------------------------------------------------- main


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=40, help="real videos (pairs)")
    parser.add_argument("--synthetic", type=int, default=12, help="synthetic pairs")
    parser.add_argument("--frames", type=int, default=24, help="frames kept per video")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--split",
        choices=("val", "train"),
        default="val",
        help="videos to measure (train: to choose settings without looking at val); "
        "train writes reference-frame-train.json/.md and no picture",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    model = load_model(None, "torch", "cpu")
    model.open()
    animator = Animator(model, mode="absolute")
    renderer = Renderer(animator)
    study_real, study_synth = PickerStudy(), PickerStudy()

    real: dict[str, list[dict]] = {"m0": [], "middle": []}
    videos = split_videos(args.split, args.videos, args.frames)
    for index, (name, frames) in enumerate(videos):
        changed = identity_pair(index, frames)
        target = frames_to_tensor(changed)
        driving = animator.driving_keypoints(frames_to_tensor(frames))
        study_real.add(driving, animator.driving_keypoints(target))
        for setting, m in (("m0", 0), ("middle", len(frames) // 2)):
            source = animator.prepare_source(target[m : m + 1])
            row = evaluate_pair(renderer, source, driving, target, m, extras=setting == "middle")
            row["video"], row["frames"] = name, len(frames)
            real[setting].append(row)
        mid = real["middle"][-1]
        print(
            f"[{index + 1}/{len(videos)}] {name} T={len(frames)} m={len(frames) // 2} "
            f"pick={mid['auto_pick']}  L1 first {mid['first']['l1']:.4f} auto "
            f"{mid['auto']['l1']:.4f} oracle {mid['oracle']['l1']:.4f}  "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )

    synth: list[dict] = []
    offset = 1000 if args.split == "val" else 2000
    for index in range(args.synthetic):
        a, b, r = synthetic_pair(index, args.frames, offset)
        target = frames_to_tensor(b)
        driving = animator.driving_keypoints(frames_to_tensor(a))
        study_synth.add(driving, animator.driving_keypoints(target))
        source = animator.prepare_source(target[r : r + 1])
        row = evaluate_pair(renderer, source, driving, target, r)
        row["frames"] = len(a)
        synth.append(row)
        print(f"[synthetic {index + 1}/{args.synthetic}] T={len(a)} r={r} pick={row['auto_pick']}")

    mid_rows = real["middle"]
    smoothing = [
        {
            "sigma": sigma,
            "l1": mean_of(mid_rows, name),
            "temporal": mean_of(mid_rows, name, "temporal"),
        }
        for sigma in SIGMAS
        for name in ["auto" if sigma == 0 else f"smooth_{sigma:g}"]
    ]
    scales = [
        {
            "motion_scale": scale,
            "l1": mean_of(mid_rows, name),
            "temporal": mean_of(mid_rows, name, "temporal"),
        }
        for scale in SCALES
        for name in ["auto" if scale == 1 else f"scale_{scale:g}"]
    ]

    # Timing on the last real video (its middle-frame source).
    frames = videos[-1][1]
    changed = identity_pair(len(videos) - 1, frames)
    source = animator.prepare_source(frames_to_tensor(changed[len(frames) // 2][None]))
    timing = option_costs(
        source,
        animator.driving_keypoints(frames_to_tensor(frames)),
        renderer.seconds / max(renderer.frames, 1),
    )

    m0, middle = block(real["m0"]), block(mid_rows)
    gain = 1 - middle["l1"]["auto"] / middle["l1"]["first"]
    over_oracle = middle["l1"]["auto"] / middle["l1"]["oracle"] - 1
    m0_cost = m0["l1"]["auto"] / m0["l1"]["first"] - 1
    targets = {
        "m = middle: auto's L1 below first's": {
            "value": gain,
            "goal": ">= 25% below",
            "met": gain >= 0.25,
        },
        "m = middle: auto's L1 above oracle's": {
            "value": over_oracle,
            "goal": "<= 10% above",
            "met": over_oracle <= 0.10,
        },
        "m = 0: auto's L1 above first's": {
            "value": m0_cost,
            "goal": "<= 2% above",
            "met": m0_cost <= 0.02,
        },
    }

    sheet = None
    if args.split == "val":
        names = [n for n, _ in videos]
        if SHEET_CLIP in names:
            index = names.index(SHEET_CLIP)
            sheet = make_sheet(animator, SHEET_CLIP, videos[index][1], index)

    result = {
        "config": {
            "split": args.split,
            "videos": len(videos),
            "synthetic": args.synthetic,
            "max_frames": args.frames,
            "threads": args.threads,
            "seed": SEED,
            "keypoints": int(source.kp_mean.shape[1]),
            "machine": MACHINE,
            "cpu": cpu_name(),
            "torch": torch.__version__,
        },
        "real": {"m0": m0, "middle": middle},
        "synthetic": block(synth),
        "targets": targets,
        "picker": {"real": study_real.summary(), "synthetic": study_synth.summary()},
        "smoothing": smoothing,
        "motion_scale": scales,
        "timing": timing,
        "sheet": sheet,
        "rows": {"real_m0": real["m0"], "real_middle": mid_rows, "synthetic": synth},
    }
    model.close()
    result["run_seconds"] = time.perf_counter() - started
    stem = "reference-frame" if args.split == "val" else "reference-frame-train"
    (HERE / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    (HERE / f"{stem}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
