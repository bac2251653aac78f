"""Boxes of one image in pixel corners, and the rules every converter applies to them.

Each converter parses its own format, then hands pixel boxes to `Labels.add_box`, so clipping,
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
    _seen: dict[tuple, int] = field(default_factory=dict)

    @property
    def has_errors(self) -> bool:
        return any(issue.severity == quality.ERROR for issue in self.issues)

    def error(self, kind: str, message: str, line: int | None = None, where: str | None = None) -> None:
        self.issues.append(quality.error(self.file, kind, message, line, where))

    def _clip(self, x0: float, y0: float, x1: float, y1: float, line: int | None, where: str | None):
        """The box clipped to the image, or None (with the finding recorded) when nothing is left."""
        if x1 - x0 < MIN_BOX_PX or y1 - y0 < MIN_BOX_PX:
            self.counts["boxes_degenerate"] += 1
            self.issues.append(
                quality.warning(
                    self.file,
                    quality.LABEL_DEGENERATE_BOX,
                    "dropped",
                    f"box {x1 - x0:g}x{y1 - y0:g} px is below {MIN_BOX_PX:g} px",
                    line,
                    where,
                )
            )
            return None
        cx0, cy0 = max(0.0, x0), max(0.0, y0)
        cx1, cy1 = min(float(self.width), x1), min(float(self.height), y1)
        if cx1 <= cx0 or cy1 <= cy0:
            self.counts["boxes_out_of_range"] += 1
            self.issues.append(
                quality.warning(
                    self.file,
                    quality.LABEL_OUT_OF_RANGE,
                    "dropped",
                    f"box ({x0:g},{y0:g})-({x1:g},{y1:g}) lies outside the {self.width}x{self.height} image",
                    line,
                    where,
                )
            )
            return None
        if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
            self.counts["boxes_clipped"] += 1
        if cx1 - cx0 < MIN_BOX_PX or cy1 - cy0 < MIN_BOX_PX:
            self.counts["boxes_degenerate"] += 1
            return None
        return cx0, cy0, cx1, cy1

    def add_box(
        self,
        cls: int,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        line: int | None = None,
        where: str | None = None,
    ) -> None:
        """Add a training target given by pixel corners, applying the module's rules."""
        box = self._clip(x0, y0, x1, y1, line, where)
        if box is None:
            return
        key = (cls, *box)
        if key in self._seen:
            self.counts["duplicates_dropped"] += 1
            first = self._seen[key]
            self.issues.append(
                quality.warning(
                    self.file,
                    quality.LABEL_DUPLICATE_BOX,
                    "dropped",
                    f"same class and box as {'line' if line is not None else 'entry'} {first}",
                    line,
                    where,
                )
            )
            return
        self._seen[key] = line if line is not None else len(self.boxes)
        self.classes.append(cls)
        self.boxes.append(box)

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
