"""The allowed ranges of the dataset settings, declared once.

`build_dataset` checks its arguments against them, and the preprocess command line checks its
flags against the same table, so a flag and the library cannot disagree on what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bounds:
    """An interval of allowed values; `low_open`/`high_open` leave that end out."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"{'above' if self.low_open else 'at least'} {self.low:g}"
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


SETTING_RANGES: dict[str, Bounds] = {
    "tile_overlap": Bounds(0, 1, high_open=True),
    "min_visible_fraction": Bounds(0, 1, low_open=True),
    "empty_tile_ratio": Bounds(0, 1),
    "val_fraction": Bounds(0, 1, high_open=True),
    "max_bad_fraction": Bounds(0, 1),
}


def range_problem(name: str, value: float) -> str:
    """Why `value` is not allowed for the setting `name` ("" when it is)."""
    bounds = SETTING_RANGES[name]
    return "" if bounds.contains(value) else f"{value!r} is out of range (allowed: {bounds})"
