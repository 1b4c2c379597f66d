"""Procedural animal-like creatures: a body plan (shape, colours, texture) and its rendering.

A creature is drawn at 4x resolution with PIL and downsampled with a Lanczos filter, which
gives anti-aliased edges. Geometry is in model units: the canvas spans [-1, 1] in x and y.

A transparent rendering draws the same shapes on a transparent canvas and box-filters it
(premultiplied): its alpha is the creature's exact coverage of each pixel at 4x (a Lanczos
filter would ring, leaving faint alpha around the creature), and its colours are the covered
sub-pixels' mean, free of the background.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 4
KEYPOINT_NAMES = (
    "body",
    "head",
    "tail_tip",
    "wing_tip",
    "foot_0",
    "foot_1",
    "foot_2",
    "foot_3",
    "knee_0",
    "knee_1",
    "knee_2",
    "knee_3",
)


@dataclass
class BodyPlan:
    """Shape and looks of one creature (poses come separately)."""

    body_length: float  # half-length of the body ellipse
    body_height: float
    head_radius: float
    neck: float  # head offset along the body axis beyond the body end
    legs: int  # 2 or 4
    thigh: float
    shin: float
    leg_width: float
    ears: bool
    tail: float  # 0: no tail
    wings: float  # 0: no wings
    body_colour: tuple[int, int, int]
    accent_colour: tuple[int, int, int]
    texture: str  # plain, stripes, spots
    background: tuple[int, int, int]
    texture_seed: int


@dataclass
class Pose:
    """One frame's pose: whole-body placement and joint angles (radians)."""

    x: float
    y: float
    pitch: float
    facing: int  # +1 right, -1 left
    hips: tuple[float, float, float, float]
    knees: tuple[float, float, float, float]
    wing: float
    tail: float
    head: float


def _colour(rng: np.random.Generator, low: int, high: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, size=3))  # type: ignore[return-value]


def random_plan(rng: np.random.Generator, legs: int) -> BodyPlan:
    white_bg = rng.random() < 0.5
    return BodyPlan(
        body_length=float(rng.uniform(0.34, 0.48)),
        body_height=float(rng.uniform(0.15, 0.26)),
        head_radius=float(rng.uniform(0.11, 0.17)),
        neck=float(rng.uniform(0.02, 0.10)),
        legs=legs,
        thigh=float(rng.uniform(0.18, 0.26)),
        shin=float(rng.uniform(0.17, 0.25)),
        leg_width=float(rng.uniform(0.045, 0.075)),
        ears=bool(rng.random() < 0.6),
        tail=float(rng.uniform(0.15, 0.35)) if rng.random() < 0.7 else 0.0,
        wings=float(rng.uniform(0.25, 0.42)) if rng.random() < 0.3 else 0.0,
        body_colour=_colour(rng, 20, 220),
        accent_colour=_colour(rng, 0, 255),
        texture=str(rng.choice(["plain", "stripes", "spots"])),
        background=(255, 255, 255) if white_bg else _colour(rng, 190, 256),
        texture_seed=int(rng.integers(0, 2**31)),
    )


def _rot(x: float, y: float, angle: float) -> tuple[float, float]:
    c, s = math.cos(angle), math.sin(angle)
    return x * c - y * s, x * s + y * c


def joints(plan: BodyPlan, pose: Pose) -> dict[str, tuple[float, float]]:
    """Named 2-D joint positions in [-1, 1] (y down) for this plan in this pose."""
    f = pose.facing

    def place(lx: float, ly: float) -> tuple[float, float]:
        rx, ry = _rot(lx * f, ly, pose.pitch * f)
        return pose.x + rx, pose.y + ry

    out: dict[str, tuple[float, float]] = {"body": place(0.0, 0.0)}
    head_angle = -0.35 + pose.head
    hx = plan.body_length + plan.neck + plan.head_radius * math.cos(head_angle)
    hy = -plan.body_height * 0.6 + plan.head_radius * math.sin(head_angle)
    out["head"] = place(hx, hy)
    out["shoulder"] = place(plan.body_length * 0.75, -plan.body_height * 0.3)
    tail_len = plan.tail if plan.tail > 0 else 0.02
    tail_angle = math.pi + 0.5 + pose.tail
    out["tail_base"] = place(-plan.body_length, -plan.body_height * 0.2)
    out["tail_tip"] = place(
        -plan.body_length + tail_len * math.cos(tail_angle),
        -plan.body_height * 0.2 + tail_len * math.sin(tail_angle),
    )
    wing_len = plan.wings if plan.wings > 0 else 0.02
    out["wing_root"] = place(plan.body_length * 0.1, -plan.body_height * 0.8)
    out["wing_tip"] = place(
        plan.body_length * 0.1 - wing_len * math.sin(pose.wing) * 0.5,
        -plan.body_height * 0.8 - wing_len * math.cos(pose.wing),
    )
    for i in range(4):
        slot = i if plan.legs == 4 else i % 2  # bipeds: slots 2 and 3 repeat legs 0 and 1
        front = slot in (0, 1) if plan.legs == 4 else False
        hip_x = (
            plan.body_length * (0.6 if front else -0.6)
            if plan.legs == 4
            else plan.body_length * 0.1
        )
        hip_x += 0.03 if slot % 2 else -0.03
        hip = (hip_x, plan.body_height * 0.6)
        hip_angle = pose.hips[slot]
        knee = (
            hip[0] + plan.thigh * math.sin(hip_angle),
            hip[1] + plan.thigh * math.cos(hip_angle),
        )
        shin_angle = hip_angle - pose.knees[slot]
        foot = (
            knee[0] + plan.shin * math.sin(shin_angle),
            knee[1] + plan.shin * math.cos(shin_angle),
        )
        out[f"hip_{i}"] = place(*hip)
        out[f"knee_{i}"] = place(*knee)
        out[f"foot_{i}"] = place(*foot)
    return out


def keypoints(joint_map: dict[str, tuple[float, float]]) -> list[list[float]]:
    """The fixed keypoint list (KEYPOINT_NAMES order) used for pairing."""
    return [[round(joint_map[n][0], 5), round(joint_map[n][1], 5)] for n in KEYPOINT_NAMES]


class _Canvas:
    def __init__(
        self, size: int, background: tuple[int, int, int], transparent: bool = False
    ) -> None:
        self.size = size
        self.big = size * SUPERSAMPLE
        if transparent:  # every shape is drawn opaque (alpha 255) over alpha 0
            self.image = Image.new("RGBA", (self.big, self.big), (*background, 0))
        else:
            self.image = Image.new("RGB", (self.big, self.big), background)
        self.draw = ImageDraw.Draw(self.image)

    def px(self, p: tuple[float, float]) -> tuple[float, float]:
        return ((p[0] + 1) / 2 * (self.big - 1), (p[1] + 1) / 2 * (self.big - 1))

    def length(self, v: float) -> float:
        return v / 2 * (self.big - 1)

    def limb(self, a, b, width: float, colour) -> None:
        w = max(1, int(self.length(width)))
        pa, pb = self.px(a), self.px(b)
        self.draw.line([pa, pb], fill=colour, width=w)
        for p in (pa, pb):
            r = w / 2
            self.draw.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=colour)

    def polygon(self, points, colour) -> None:
        self.draw.polygon([self.px(p) for p in points], fill=colour)


def _ellipse_points(centre, rx: float, ry: float, angle: float, n: int = 48):
    pts = []
    for k in range(n):
        t = 2 * math.pi * k / n
        dx, dy = _rot(rx * math.cos(t), ry * math.sin(t), angle)
        pts.append((centre[0] + dx, centre[1] + dy))
    return pts


def _shade(colour, factor: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, c * factor))) for c in colour)  # type: ignore[return-value]


def _texture_layer(plan: BodyPlan, canvas: _Canvas, pose: Pose) -> Image.Image:
    """Stripes or spots that move with the body, drawn over the whole canvas (masked later)."""
    layer = Image.new("RGB", canvas.image.size, plan.body_colour)
    if plan.texture == "plain":
        return layer
    draw = ImageDraw.Draw(layer)
    rng = np.random.default_rng(plan.texture_seed)
    centre = (pose.x, pose.y)
    if plan.texture == "stripes":
        for k in range(-6, 7):
            offset = k * plan.body_length / 4
            a = (centre[0] + offset * pose.facing, centre[1] - 0.6)
            b = (centre[0] + offset * pose.facing + 0.1, centre[1] + 0.6)
            draw.line(
                [canvas.px(a), canvas.px(b)],
                fill=plan.accent_colour,
                width=max(1, int(canvas.length(plan.body_length / 12))),
            )
    else:
        for _ in range(14):
            lx = rng.uniform(-1, 1) * plan.body_length
            ly = rng.uniform(-1, 1) * plan.body_height
            r = canvas.length(rng.uniform(0.02, 0.05))
            cx, cy = canvas.px((centre[0] + lx * pose.facing, centre[1] + ly))
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=plan.accent_colour)
    return layer


def render(plan: BodyPlan, pose: Pose, size: int, transparent: bool = False) -> np.ndarray:
    """(size, size, 3) uint8 image of the creature in this pose on the plan's background; with
    `transparent`, (size, size, 4) RGBA whose alpha is the creature's exact mask (coverage of
    each pixel, 0 on the background)."""
    canvas = _Canvas(size, plan.background, transparent)
    j = joints(plan, pose)
    leg_colour = _shade(plan.body_colour, 0.7)
    far_colour = _shade(plan.body_colour, 0.5)
    slots = range(4) if plan.legs == 4 else range(2)
    for i in slots:  # far-side legs first (odd slots), drawn darker
        if i % 2:
            canvas.limb(j[f"hip_{i}"], j[f"knee_{i}"], plan.leg_width, far_colour)
            canvas.limb(j[f"knee_{i}"], j[f"foot_{i}"], plan.leg_width * 0.8, far_colour)
    if plan.tail > 0:
        canvas.limb(j["tail_base"], j["tail_tip"], plan.leg_width * 0.6, leg_colour)
    body = _ellipse_points(j["body"], plan.body_length, plan.body_height, pose.pitch * pose.facing)
    mask = Image.new("L", canvas.image.size, 0)
    ImageDraw.Draw(mask).polygon([canvas.px(p) for p in body], fill=255)
    canvas.image.paste(_texture_layer(plan, canvas, pose), (0, 0), mask)
    canvas.limb(j["shoulder"], j["head"], plan.head_radius * 0.9, plan.body_colour)
    head = _ellipse_points(j["head"], plan.head_radius, plan.head_radius * 0.85, 0.0)
    canvas.polygon(head, plan.body_colour)
    if plan.ears:
        hx, hy = j["head"]
        r = plan.head_radius
        for dx in (-0.4, 0.3):
            base = (hx + dx * r * pose.facing, hy - 0.7 * r)
            canvas.polygon(
                [
                    base,
                    (base[0] + 0.35 * r * pose.facing, base[1]),
                    (base[0] + 0.1 * r * pose.facing, base[1] - 0.9 * r),
                ],
                plan.accent_colour,
            )
    eye = (
        j["head"][0] + 0.4 * plan.head_radius * pose.facing,
        j["head"][1] - 0.15 * plan.head_radius,
    )
    canvas.limb(eye, eye, plan.head_radius * 0.25, (10, 10, 10))
    for i in slots:
        if not i % 2:
            canvas.limb(j[f"hip_{i}"], j[f"knee_{i}"], plan.leg_width, leg_colour)
            canvas.limb(j[f"knee_{i}"], j[f"foot_{i}"], plan.leg_width * 0.8, leg_colour)
    if plan.wings > 0:
        root, tip = j["wing_root"], j["wing_tip"]
        back = (root[0] - plan.body_length * 0.5 * pose.facing, root[1])
        canvas.polygon([root, tip, back], _shade(plan.accent_colour, 0.9))
    if transparent:
        # Box: each pixel's alpha is the share of its 4x4 sub-pixels the creature covers.
        # Pillow filters RGBA premultiplied, so the background colour does not leak in.
        small = canvas.image.resize((size, size), Image.Resampling.BOX)
    else:
        small = canvas.image.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8).copy()
