"""Boxes of one image in pixel corners, and the rules every converter applies to them.

Each converter parses its own format, then hands pixel boxes to `Labels.add_boxes`, so clipping,
degenerate-box and duplicate handling are the same for VisDrone, COCO and YOLO sources:
- a box reaching past the image is clipped to it (counted as `boxes_clipped`);
- a box with no area left inside the image is out of range (a warning; the box is dropped);
- a box narrower or lower than `min_box_px` after clipping is degenerate (dropped, counted);
- a second box with the same class and corners is a duplicate (dropped, counted).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from yolo_core.data import quality

MIN_BOX_PX = 1.0


@dataclass
class Labels:
    """Training targets, regions to ignore (masked out), and what parsing found."""

    file: str
    width: int
    height: int
    classes: list[int] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    ignored: list[tuple[float, float, float, float]] = field(default_factory=list)
    issues: list[quality.Issue] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    _seen: dict[tuple, str] = field(default_factory=dict)  # (class, corners) -> where first seen

    @property
    def has_errors(self) -> bool:
        return any(issue.severity == quality.ERROR for issue in self.issues)

    def error(self, kind: str, message: str, line: int | None = None, where: str | None = None) -> None:
        self.issues.append(quality.error(self.file, kind, message, line, where))

    def _warn(self, kind: str, message: str, line: int | None, where: str | None) -> None:
        self.issues.append(quality.warning(self.file, kind, "dropped", message, line, where))

    def add_boxes(
        self,
        classes: list[int],
        corners: list[list[float]],
        lines: list[int | None] | None = None,
        wheres: list[str | None] | None = None,
    ) -> None:
        """Add training targets given by pixel corners, applying the module's rules.

        Vectorised: frames carry hundreds of boxes, and these rules ran per box in Python
        before. Findings are recorded in the order of `lines`.
        """
        count = len(classes)
        if not count:
            return
        lines = lines or [None] * count
        wheres = wheres or [None] * count
        boxes = np.asarray(corners, dtype=np.float64).reshape(-1, 4)
        clipped = np.clip(boxes, 0, [self.width, self.height, self.width, self.height])
        sizes = boxes[:, 2:] - boxes[:, :2]
        clipped_sizes = clipped[:, 2:] - clipped[:, :2]
        degenerate = (sizes < MIN_BOX_PX).any(axis=1)
        outside = ~degenerate & (clipped_sizes <= 0).any(axis=1)
        too_small = ~degenerate & ~outside & (clipped_sizes < MIN_BOX_PX).any(axis=1)
        was_clipped = ~degenerate & ~outside & (clipped != boxes).any(axis=1)
        self.counts["boxes_degenerate"] += int(degenerate.sum() + too_small.sum())
        self.counts["boxes_out_of_range"] += int(outside.sum())
        self.counts["boxes_clipped"] += int(was_clipped.sum())
        found: list[tuple[int, str, str]] = []
        for i in np.flatnonzero(degenerate).tolist():
            w, h = sizes[i]
            found.append((i, quality.LABEL_DEGENERATE_BOX, f"box {w:g}x{h:g} px is below {MIN_BOX_PX:g} px"))
        for i in np.flatnonzero(outside).tolist():
            x0, y0, x1, y1 = boxes[i]
            message = f"box ({x0:g},{y0:g})-({x1:g},{y1:g}) lies outside the {self.width}x{self.height} image"
            found.append((i, quality.LABEL_OUT_OF_RANGE, message))
        keep = np.flatnonzero(~(degenerate | outside | too_small)).tolist()
        for i, row in zip(keep, clipped[keep].tolist(), strict=True):
            key = (classes[i], *row)
            if key in self._seen:
                self.counts["duplicates_dropped"] += 1
                found.append((i, quality.LABEL_DUPLICATE_BOX, f"same class and box as {self._seen[key]}"))
                continue
            self._seen[key] = f"line {lines[i]}" if lines[i] is not None else str(wheres[i])
            self.classes.append(int(classes[i]))
            self.boxes.append(tuple(row))
        for i, kind, message in sorted(found):
            self._warn(kind, message, lines[i], wheres[i])

    def add_ignored(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """A region that is not a target and is masked out of the image."""
        self.counts["ignored_regions"] += 1
        x0, y0 = max(0.0, x0), max(0.0, y0)
        x1, y1 = min(float(self.width), x1), min(float(self.height), y1)
        if x1 > x0 and y1 > y0:
            self.ignored.append((x0, y0, x1, y1))

    def box_array(self) -> np.ndarray:
        return np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)

    def class_array(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=np.int64)


def parse_numbers(fields: list[str]) -> list[float] | None:
    """The fields as finite floats, or None when any is not a number."""
    try:
        values = list(map(float, fields))  # float() itself accepts surrounding blanks
    except ValueError:
        return None
    return values if all(map(math.isfinite, values)) else None
