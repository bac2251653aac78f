"""Synthetic top-down drone scenes written in the VisDrone-DET layout.

Why: tests, the demo and the benchmarks need drone-like data with no download. The scenes have
what makes drone detection hard (tiny objects, shadows, partial occlusion by trees, objects cut
by the frame edge, dense crowds marked as ignored regions) while each class keeps a distinct
shape, colour scheme and aspect ratio, so that a tiny YOLO learns them from scratch on a CPU.

Layout written: `<out>/images/frame_000000.jpg` and `<out>/annotations/frame_000000.txt`, one
row per object `left,top,width,height,score,category,truncation,occlusion` (VisDrone-DET):
- targets: score 1, category 1-10; truncation 0/1 (0 or up to 50% outside the frame),
  occlusion 0/1/2 (none, up to 50%, over 50% hidden by trees);
- boxes of objects cut by the frame edge are written unclipped (left/top may be negative),
  as some real annotation tools do; the converter clips them;
- objects hidden over 80% by trees get score 0 (the annotator ignored them);
- dense clusters of tiny objects are one row with category 0 (ignored region) and score 0;
- wooden carts are category 11 ("others").
Every frame is a pure function of (seed, frame index), so any subset can be regenerated.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from yolo_core.data.pool import process_pool
from yolo_core.data.visdrone_classes import CATEGORY_BY_NAME, IGNORED_REGION
from yolo_core.errors import UserInputError

DEFAULT_CLASSES = ("pedestrian", "car", "van", "truck", "bus", "motor")
GRASS, PAVED, ROOF = 0, 1, 2
DARK_GLASS = (40, 38, 36)

Color = tuple[int, int, int]


@dataclass(frozen=True)
class Pose:
    """Where an object lies: centre, heading (radians) and size in pixels."""

    cx: float
    cy: float
    angle: float
    length: float
    width: float

    def corners(self, u0=-0.5, u1=0.5, v0=-0.5, v1=0.5, dx=0.0, dy=0.0) -> np.ndarray:
        """Corners of the part spanning [u0,u1] x [v0,v1] of the body (u along its length)."""
        along = np.array([u0, u1, u1, u0]) * self.length
        across = np.array([v0, v0, v1, v1]) * self.width
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        return np.stack(
            [self.cx + dx + along * cos - across * sin, self.cy + dy + along * sin + across * cos], 1
        )

    def bbox(self) -> tuple[float, float, float, float]:
        corners = self.corners()
        return (*corners.min(axis=0), *corners.max(axis=0))


def _fill(img: np.ndarray, polygon: np.ndarray, color: Color | int) -> None:
    """Sub-pixel polygon fill: tiny objects keep their shape instead of snapping to the grid."""
    cv2.fillConvexPoly(img, np.round(polygon * 16).astype(np.int32), color, cv2.LINE_AA, shift=4)


def _part(img: np.ndarray, pose: Pose, u0: float, u1: float, v0: float, v1: float, color: Color) -> None:
    _fill(img, pose.corners(u0, u1, v0, v1), color)


def _disc(img: np.ndarray, pose: Pose, u: float, radius_of_width: float, color: Color) -> None:
    centre = (
        np.array([pose.cx, pose.cy])
        + np.array([math.cos(pose.angle), math.sin(pose.angle)]) * pose.length * u
    )
    radius = max(1.0, pose.width * radius_of_width)
    cv2.circle(img, tuple(np.round(centre * 16).astype(int)), round(radius * 16), color, -1, cv2.LINE_AA, 4)


def _pick(rng: np.random.Generator, palette: list[Color]) -> Color:
    return palette[int(rng.integers(len(palette)))]


def _shade(color: Color, factor: float) -> Color:
    return tuple(int(min(255, c * factor)) for c in color)  # type: ignore[return-value]


def _draw_car(img, pose, rng):
    body = _pick(rng, [(40, 40, 190), (150, 70, 30), (225, 225, 225), (35, 35, 35), (175, 175, 170)])
    _part(img, pose, -0.5, 0.5, -0.5, 0.5, body)
    _part(img, pose, -0.26, 0.12, -0.4, 0.4, _shade(body, 1.15))
    _part(img, pose, 0.12, 0.3, -0.42, 0.42, DARK_GLASS)
    _part(img, pose, -0.38, -0.26, -0.4, 0.4, DARK_GLASS)


def _draw_van(img, pose, rng):
    body = _pick(rng, [(235, 235, 235), (200, 200, 195), (170, 200, 215)])
    _part(img, pose, -0.5, 0.5, -0.5, 0.5, body)
    _part(img, pose, 0.3, 0.42, -0.44, 0.44, DARK_GLASS)
    for u in (-0.3, -0.12, 0.06):
        _part(img, pose, u, u + 0.04, -0.4, 0.4, _shade(body, 0.7))


def _draw_truck(img, pose, rng):
    cab = _pick(rng, [(30, 30, 200), (170, 80, 20), (0, 120, 230)])
    cargo = _pick(rng, [(215, 215, 215), (40, 80, 140), (60, 130, 60)])
    _part(img, pose, -0.5, 0.22, -0.5, 0.5, cargo)
    _part(img, pose, 0.22, 0.27, -0.3, 0.3, (30, 30, 30))
    _part(img, pose, 0.27, 0.5, -0.46, 0.46, cab)
    _part(img, pose, 0.4, 0.47, -0.4, 0.4, DARK_GLASS)


def _draw_bus(img, pose, rng):
    body = _pick(rng, [(0, 200, 240), (230, 230, 230), (60, 60, 200)])
    _part(img, pose, -0.5, 0.5, -0.5, 0.5, body)
    _part(img, pose, -0.45, 0.42, -0.5, -0.36, (55, 50, 50))
    _part(img, pose, -0.45, 0.42, 0.36, 0.5, (55, 50, 50))
    _part(img, pose, -0.15, 0.0, -0.28, 0.28, (150, 150, 150))
    _part(img, pose, 0.12, 0.27, -0.28, 0.28, (150, 150, 150))
    _part(img, pose, 0.44, 0.5, -0.45, 0.45, DARK_GLASS)


def _draw_pedestrian(img, pose, rng):
    cloth = _pick(rng, [(30, 30, 210), (210, 120, 30), (40, 190, 230), (200, 60, 160), (245, 245, 245)])
    centre = (round(pose.cx * 16), round(pose.cy * 16))
    axes = (round(pose.length * 8), round(pose.width * 8))
    cv2.ellipse(img, centre, axes, math.degrees(pose.angle), 0, 360, cloth, -1, cv2.LINE_AA, 4)
    _disc(img, pose, 0.0, 0.32, (25, 30, 40))


def _draw_motor(img, pose, rng):
    _part(img, pose, -0.5, 0.45, -0.22, 0.22, (35, 35, 40))
    _part(img, pose, 0.2, 0.26, -0.5, 0.5, (90, 90, 90))
    _disc(img, pose, -0.05, 0.42, _pick(rng, [(20, 20, 220), (230, 230, 230), (0, 180, 250)]))


def _draw_bicycle(img, pose, rng):
    _part(img, pose, -0.5, 0.5, -0.12, 0.12, (20, 20, 20))
    _part(img, pose, 0.28, 0.33, -0.5, 0.5, (120, 120, 120))
    _disc(img, pose, -0.1, 0.3, _pick(rng, [(200, 200, 40), (40, 200, 40)]))


def _draw_cart(img, pose, rng):
    wood = _pick(rng, [(60, 100, 140), (50, 85, 120)])
    _part(img, pose, -0.5, 0.5, -0.5, 0.5, wood)
    for v in (-0.25, 0.0, 0.25):
        _part(img, pose, -0.48, 0.48, v - 0.03, v + 0.03, _shade(wood, 0.6))


@dataclass(frozen=True)
class Design:
    """How a class looks: aspect ratio (length/width), where its size sits in object_px, painter."""

    aspect: tuple[float, float]
    size: tuple[float, float]
    vehicle: bool
    draw: Callable[[np.ndarray, Pose, np.random.Generator], None]


DESIGNS: dict[str, Design] = {
    "pedestrian": Design((1.1, 1.4), (0.0, 0.15), False, _draw_pedestrian),
    "bicycle": Design((2.6, 3.0), (0.08, 0.22), False, _draw_bicycle),
    "motor": Design((2.2, 2.7), (0.12, 0.3), True, _draw_motor),
    "car": Design((2.0, 2.3), (0.32, 0.5), True, _draw_car),
    "van": Design((1.7, 1.95), (0.42, 0.6), True, _draw_van),
    "truck": Design((2.6, 3.1), (0.62, 0.85), True, _draw_truck),
    "bus": Design((3.7, 4.3), (0.82, 1.0), True, _draw_bus),
    "others": Design((1.3, 1.6), (0.3, 0.5), True, _draw_cart),
}


@dataclass
class Scene:
    """The painted frame plus the paved rectangles (x0, y0, x1, y1, direction) and ground map."""

    image: np.ndarray
    ground: np.ndarray
    paved: list[tuple[int, int, int, int, float | None]]


def _texture(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Ground texture as a uint8 offset around 46: smooth blotches plus grain, cheap on 4K frames.

    Saturating uint8 arithmetic keeps this at a few milliseconds a frame, where float noise
    over three channels cost ten times more.
    """
    coarse = rng.normal(40, 14, (height // cell + 2, width // cell + 2)).clip(0, 80).astype(np.uint8)
    blotches = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.integers(0, 13, (height, width), dtype=np.uint8)
    return cv2.add(blotches, grain)


def _rect(rng: np.random.Generator, width: int, height: int, w: int, h: int) -> tuple[int, int, int, int]:
    x0 = int(rng.integers(-w // 4, max(1, width - w * 3 // 4)))
    y0 = int(rng.integers(-h // 4, max(1, height - h * 3 // 4)))
    return x0, y0, x0 + w, y0 + h


def _paint_background(rng: np.random.Generator, width: int, height: int, object_hi: int) -> Scene:
    grass = (int(rng.integers(40, 70)), int(rng.integers(105, 140)), int(rng.integers(60, 90)))
    image = np.empty((height, width, 3), np.uint8)
    image[:] = grass
    ground = np.zeros((height, width), np.uint8)
    short = min(width, height)
    for _ in range(int(rng.integers(1, 4 + width * height // 400_000))):
        w, h = (int(rng.uniform(0.08, 0.22) * short) for _ in range(2))
        x0, y0, x1, y1 = _rect(rng, width, height, w, h)
        roof = _pick(rng, [(60, 80, 170), (110, 105, 100), (70, 70, 75), (170, 170, 165)])
        cv2.rectangle(image, (x0, y0), (x1, y1), roof, -1)
        ridge_horizontal = w >= h
        half = (x1, (y0 + y1) // 2) if ridge_horizontal else ((x0 + x1) // 2, y1)
        cv2.rectangle(image, (x0, y0), half, _shade(roof, 0.8), -1)
        cv2.rectangle(ground, (x0, y0), (x1, y1), ROOF, -1)
    paved: list[tuple[int, int, int, int, float | None]] = []
    for _ in range(int(rng.integers(0, 3))):
        w, h = int(rng.uniform(0.15, 0.35) * short), int(rng.uniform(0.12, 0.3) * short)
        x0, y0, x1, y1 = _rect(rng, width, height, w, h)
        cv2.rectangle(image, (x0, y0), (x1, y1), (105, 105, 108), -1)
        for x in range(x0, x1, max(4, object_hi // 2)):
            cv2.line(image, (x, y0), (x, y0 + h // 5), (200, 200, 200), 1)
        cv2.rectangle(ground, (x0, y0), (x1, y1), PAVED, -1)
        paved.append((x0, y0, x1, y1, None))
    for horizontal in (True, False):
        extent = height if horizontal else width
        for _ in range(int(rng.integers(1 if horizontal else 0, 2 + extent // 700))):
            road_w = int(rng.uniform(0.9, 1.3) * object_hi)
            at = int(rng.integers(0, max(1, extent - road_w)))
            if horizontal:
                x0, y0, x1, y1 = 0, at, width, at + road_w
            else:
                x0, y0, x1, y1 = at, 0, at + road_w, height
            cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), (80, 78, 78), -1)
            dash = max(4, object_hi // 3)
            if horizontal:
                mid = (y0 + y1) // 2
                for x in range(0, width, dash * 2):
                    cv2.line(image, (x, mid), (x + dash, mid), (230, 230, 230), 1)
            else:
                mid = (x0 + x1) // 2
                for y in range(0, height, dash * 2):
                    cv2.line(image, (mid, y), (mid, y + dash), (230, 230, 230), 1)
            cv2.rectangle(ground, (x0, y0), (x1 - 1, y1 - 1), PAVED, -1)
            paved.append((x0, y0, x1, y1, 0.0 if horizontal else math.pi / 2))
    texture = cv2.merge([_texture(rng, height, width, max(8, short // 40))] * 3)
    image = cv2.subtract(cv2.add(image, texture), (46, 46, 46, 0))
    return Scene(image, ground, paved)


@dataclass
class Placed:
    category: int
    design: Design
    pose: Pose
    score: int = 1


def _boxes_overlap(box: tuple[float, ...], boxes: list[tuple[float, ...]], margin: float) -> bool:
    if not boxes:
        return False
    others = np.asarray(boxes)
    return bool(
        np.any(
            (others[:, 0] < box[2] + margin)
            & (others[:, 2] > box[0] - margin)
            & (others[:, 1] < box[3] + margin)
            & (others[:, 3] > box[1] - margin)
        )
    )


def _outside_fraction(box: tuple[float, ...], width: int, height: int) -> float:
    x0, y0, x1, y1 = box
    area = max(1e-6, (x1 - x0) * (y1 - y0))
    inside = max(0.0, min(x1, width) - max(x0, 0)) * max(0.0, min(y1, height) - max(y0, 0))
    return 1.0 - inside / area


class _Placer:
    """Finds free, plausible spots: vehicles mostly on roads and lots, nothing on roofs."""

    def __init__(self, rng, scene: Scene, object_px: tuple[int, int], forbidden: list[tuple[float, ...]]):
        self.rng, self.scene, self.object_px = rng, scene, object_px
        self.height, self.width = scene.ground.shape
        self.taken: list[tuple[float, ...]] = list(forbidden)

    def size(self, design: Design, scale: float = 1.0) -> tuple[float, float]:
        lo, hi = self.object_px
        length = (lo + (hi - lo) * self.rng.uniform(*design.size)) * scale
        return length, length / self.rng.uniform(*design.aspect)

    def _spot(self, design: Design, length: float, edge: bool) -> tuple[float, float, float]:
        rng = self.rng
        angle = rng.uniform(0, 2 * math.pi)
        if edge:
            side = int(rng.integers(4))
            along = rng.uniform(0, self.width if side < 2 else self.height)
            depth = rng.uniform(-0.2, 0.25) * length
            far = (self.width if side == 1 else self.height) - depth
            cx, cy = [(depth, along), (far, along), (along, depth), (along, far)][side]
            return cx, cy, angle
        if design.vehicle and self.scene.paved and rng.random() < 0.85:
            areas = np.array([(x1 - x0) * (y1 - y0) for x0, y0, x1, y1, _ in self.scene.paved], float)
            x0, y0, x1, y1, direction = self.scene.paved[int(rng.choice(len(areas), p=areas / areas.sum()))]
            if direction is not None:
                angle = direction + rng.normal(0, 0.06) + math.pi * int(rng.integers(2))
            else:
                angle = math.pi / 2 * int(rng.integers(4)) + rng.normal(0, 0.1)
            return (
                rng.uniform(max(0, x0), min(self.width, x1)),
                rng.uniform(max(0, y0), min(self.height, y1)),
                angle,
            )
        return rng.uniform(0, self.width), rng.uniform(0, self.height), angle

    def place(self, design: Design, edge: bool = False, scale: float = 1.0, tries: int = 25) -> Pose | None:
        length, width = self.size(design, scale)
        for _ in range(tries):
            cx, cy, angle = self._spot(design, length, edge)
            pose = Pose(cx, cy, angle, length, width)
            box = pose.bbox()
            outside = _outside_fraction(box, self.width, self.height)
            if outside > (0.5 if edge else 0.0) or (edge and outside < 0.05):
                continue
            ix = int(np.clip(cx, 0, self.width - 1))
            iy = int(np.clip(cy, 0, self.height - 1))
            if self.scene.ground[iy, ix] == ROOF or _boxes_overlap(box, self.taken, 2.0):
                continue
            self.taken.append(box)
            return pose
        return None


def _ignored_region(rng, scene: Scene, object_px: tuple[int, int]) -> tuple[int, int, int, int]:
    """A dense crowd of tiny objects: visible, but too small and packed to annotate."""
    height, width = scene.ground.shape
    short = min(width, height)
    w, h = int(rng.uniform(0.12, 0.25) * short), int(rng.uniform(0.1, 0.2) * short)
    x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
    tiny = max(3.0, object_px[0] * 0.6)
    kinds = [DESIGNS["pedestrian"], DESIGNS["car"], DESIGNS["motor"]]
    for _ in range(min(200, int(w * h / (tiny * 2.2) ** 2))):
        design = kinds[int(rng.integers(len(kinds)))]
        length = tiny * rng.uniform(0.8, 1.4) * (1.6 if design.vehicle else 1.0)
        pose = Pose(
            x0 + w * rng.uniform(0.1, 0.9),
            y0 + h * rng.uniform(0.1, 0.9),
            rng.uniform(0, 2 * math.pi),
            length,
            length / rng.uniform(*design.aspect),
        )
        design.draw(scene.image, pose, rng)
    return x0, y0, w, h


def _paint_shadows(image: np.ndarray, poses: list[Pose], sun: np.ndarray) -> None:
    """Shadows fall on the ground before objects are painted, all darkened in one pass."""
    mask = np.zeros(image.shape[:2], np.uint8)
    for pose in poses:
        offset = sun * (0.35 * pose.width + 1.0)
        _fill(mask, pose.corners(dx=offset[0], dy=offset[1]), 255)
    cv2.copyTo(cv2.convertScaleAbs(image, alpha=0.55), mask, image)


def _paint_trees(rng, scene: Scene, targets: list[Placed], object_px: tuple[int, int]) -> np.ndarray:
    """Tree canopies: some random, some placed to hide part of an object. Returns the canopy mask."""
    height, width = scene.ground.shape
    canopy = np.zeros((height, width), np.uint8)
    centres: list[tuple[float, float, float]] = []
    for placed in targets:
        if rng.random() < 0.12:
            pose = placed.pose
            direction = rng.uniform(0, 2 * math.pi)
            reach = pose.length * rng.uniform(0.45, 0.8)
            radius = pose.length * rng.uniform(0.35, 0.6)
            centres.append(
                (pose.cx + reach * math.cos(direction), pose.cy + reach * math.sin(direction), radius)
            )
    for _ in range(int(rng.integers(1, 3 + width * height // 150_000))):
        radius = object_px[1] * rng.uniform(0.3, 0.7)
        centres.append((rng.uniform(0, width), rng.uniform(0, height), radius))
    for cx, cy, radius in centres:
        centre = (round(cx * 16), round(cy * 16))
        cv2.circle(canopy, centre, round(radius * 16), 255, -1, cv2.LINE_AA, 4)
        green = (int(rng.integers(25, 45)), int(rng.integers(70, 95)), int(rng.integers(30, 50)))
        cv2.circle(scene.image, centre, round(radius * 16), green, -1, cv2.LINE_AA, 4)
        cv2.circle(scene.image, centre, round(radius * 10), _shade(green, 1.25), -1, cv2.LINE_AA, 4)
    return canopy


def _hidden_fraction(pose: Pose, canopy: np.ndarray) -> float:
    height, width = canopy.shape
    x0, y0, x1, y1 = (int(math.floor(c)) for c in pose.bbox())
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1 + 1), min(height, y1 + 1)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    body = np.zeros((y1 - y0, x1 - x0), np.uint8)
    _fill(body, pose.corners(dx=-x0, dy=-y0), 255)
    inside = body > 0
    return float((canopy[y0:y1, x0:x1][inside] > 0).mean()) if inside.any() else 0.0


def _row(box: tuple[float, ...], score: int, category: int, truncation: int, occlusion: int) -> str:
    left, top = math.floor(box[0]), math.floor(box[1])
    width, height = math.ceil(box[2]) - left, math.ceil(box[3]) - top
    return f"{left},{top},{width},{height},{score},{category},{truncation},{occlusion}"


def render_frame(
    index: int,
    seed: int,
    width: int,
    height: int,
    object_px: tuple[int, int],
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    density: float = 1.0,
) -> tuple[np.ndarray, list[str]]:
    """One frame (BGR) and its VisDrone annotation rows; a pure function of its arguments."""
    rng = np.random.default_rng([seed, index])
    scene = _paint_background(rng, width, height, object_px[1])
    rows: list[str] = []
    forbidden: list[tuple[float, ...]] = []
    if rng.random() < 0.7:
        x0, y0, w, h = _ignored_region(rng, scene, object_px)
        rows.append(f"{x0},{y0},{w},{h},0,{IGNORED_REGION},0,0")
        forbidden.append((x0, y0, x0 + w, y0 + h))
    placer = _Placer(rng, scene, object_px, forbidden)
    # Objects cover about 6% of the frame at density 1, whatever the frame and object sizes.
    mean_area = ((object_px[0] + object_px[1]) / 2) ** 2 / 2.2
    count = max(3, round(density * 0.06 * width * height / mean_area * rng.uniform(0.7, 1.3)))
    placed: list[Placed] = []
    for _ in range(count):
        name = "others" if rng.random() < 0.04 else classes[int(rng.integers(len(classes)))]
        pose = placer.place(DESIGNS[name], edge=rng.random() < 0.08)
        if pose is not None:
            placed.append(Placed(CATEGORY_BY_NAME[name], DESIGNS[name], pose))
    sun = rng.uniform(-1, 1, 2)
    _paint_shadows(scene.image, [p.pose for p in placed], sun / max(1e-6, float(np.linalg.norm(sun))))
    for item in placed:
        item.design.draw(scene.image, item.pose, rng)
    canopy = _paint_trees(rng, scene, placed, object_px)
    for item in placed:
        box = item.pose.bbox()
        truncation = int(_outside_fraction(box, width, height) > 0.0)
        hidden = _hidden_fraction(item.pose, canopy)
        occlusion = 0 if hidden == 0 else (1 if hidden <= 0.5 else 2)
        score = 0 if hidden > 0.8 else item.score
        rows.append(_row(box, score, item.category, truncation, occlusion))
    return scene.image, rows


def _write_frame(index: int, out_dir: Path, seed: int, jpeg_quality: int, **scene_args) -> None:
    cv2.setNumThreads(1)
    image, rows = render_frame(index, seed, **scene_args)
    name = f"frame_{index:06d}"
    cv2.imwrite(str(out_dir / "images" / f"{name}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    (out_dir / "annotations" / f"{name}.txt").write_text("\n".join(rows) + "\n")


def scene_size_problem(width: int, height: int, object_px: tuple[int, int]) -> str:
    """Why these frame and object sizes cannot make a scene ("" when they can).

    Callers prefix the flags or fields they came from, so the user learns which to change.
    """
    lo, hi = object_px
    if width < 1 or height < 1:
        return f"frame size {width}x{height} must be positive"
    if lo < 2:
        return f"the smallest object size {lo} px must be at least 2 px"
    if lo > hi:
        return f"the smallest object size {lo} px exceeds the largest {hi} px"
    if hi * 2 > min(width, height):
        return (
            f"objects up to {hi} px need frames of at least {hi * 2} px on each side "
            f"(got {width}x{height}); use bigger frames or smaller objects"
        )
    return ""


def generate_scenes(
    out_dir: str | Path,
    n_frames: int,
    seed: int = 0,
    width: int = 1920,
    height: int = 1080,
    object_px: tuple[int, int] = (6, 80),
    *,
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    density: float = 1.0,
    jpeg_quality: int = 90,
    workers: int | None = None,
) -> Path:
    """Write `n_frames` synthetic frames in the VisDrone-DET layout under `out_dir`; return it.

    `object_px` bounds the long side of objects in pixels: each class sits in its own part of the
    range (pedestrians at the bottom, buses at the top). `classes` picks the VisDrone classes
    drawn, from: pedestrian, bicycle, motor, car, van, truck, bus; `density` scales the object
    count (1.0: objects cover about 6% of the frame). Small, easy scenes for tests:
    `width=height=320, object_px=(14, 48)`. Frames are written by a process pool when there are
    many (`workers`, default: all cores).
    """
    unknown = [name for name in classes if name not in DESIGNS or name == "others"]
    if unknown or not classes:
        raise ValueError(
            f"classes {unknown or classes} unknown; choose from {sorted(set(DESIGNS) - {'others'})}"
        )
    if n_frames < 0:
        raise UserInputError(f"n_frames={n_frames} must not be negative")
    lo, hi = object_px
    problem = scene_size_problem(width, height, object_px)
    if problem:
        raise UserInputError(f"width={width}, height={height}, object_px={object_px}: {problem}")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    write = partial(
        _write_frame,
        out_dir=out_dir,
        seed=seed,
        jpeg_quality=jpeg_quality,
        width=width,
        height=height,
        object_px=(int(lo), int(hi)),
        classes=tuple(classes),
        density=density,
    )
    workers = workers or min(os.cpu_count() or 1, max(1, n_frames // 8))
    if workers <= 1:
        for index in range(n_frames):
            write(index)
    else:
        with process_pool(workers) as pool:
            list(pool.map(write, range(n_frames), chunksize=4))
    return out_dir
