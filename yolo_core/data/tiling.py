"""Train-time tiling of large frames, as pure functions over window and box arrays.

Why: objects of 6-20 px in a 4K frame vanish when the frame is resized to the network's input,
so large frames are cut into overlapping tiles at full resolution. A box cut by a tile edge is
clipped to the tile and kept only if at least `min_visible_fraction` of its area is inside;
tiles then carry their own labels. Windows are laid out so the last one touches the frame's
far edge (no padding), and a frame smaller than the tile is a single window of its own size.
Windows are spread evenly, so neighbours share at least `overlap` of a tile.
Boxes are `(N, 4)` arrays of pixel corners `x0, y0, x1, y1`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Window:
    """A tile's place in its source frame: top-left offset and size, in frame pixels."""

    x: int
    y: int
    width: int
    height: int

    def as_box(self) -> np.ndarray:
        return np.array([self.x, self.y, self.x + self.width, self.y + self.height], dtype=np.float64)


def _starts(length: int, tile: int, step: int) -> list[int]:
    """Evenly spread starts, first at 0 and last at the far edge, never further apart than `step`."""
    if length <= tile:
        return [0]
    gaps = math.ceil((length - tile) / step)
    return [round(i * (length - tile) / gaps) for i in range(gaps + 1)]


def tile_windows(frame_width: int, frame_height: int, tile_size: int, overlap: float) -> list[Window]:
    """Windows of `tile_size` covering the frame, neighbours sharing at least `overlap` of a tile."""
    if tile_size < 1 or not 0 <= overlap < 1:
        raise ValueError(f"tile_size must be >= 1 and overlap in [0, 1), got {tile_size}, {overlap}")
    step = max(1, round(tile_size * (1 - overlap)))
    width, height = min(tile_size, frame_width), min(tile_size, frame_height)
    return [
        Window(x, y, width, height)
        for y in _starts(frame_height, tile_size, step)
        for x in _starts(frame_width, tile_size, step)
    ]


def frame_to_tile(boxes: np.ndarray, window: Window) -> np.ndarray:
    """Frame pixel corners to the tile's pixel corners (not clipped)."""
    return np.asarray(boxes, dtype=np.float64) - [window.x, window.y, window.x, window.y]


def tile_to_frame(boxes: np.ndarray, window: Window) -> np.ndarray:
    """Tile pixel corners back to the frame: stitches tile predictions into frame coordinates."""
    return np.asarray(boxes, dtype=np.float64) + [window.x, window.y, window.x, window.y]


def box_areas(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def clip_to_window(
    boxes: np.ndarray, window: Window, min_visible_fraction: float, min_box_px: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes seen through `window`, in tile coordinates, and the indices of the kept boxes.

    A box is kept when the part inside the window is at least `min_visible_fraction` of its
    area and at least `min_box_px` wide and high.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    local = frame_to_tile(boxes, window)
    clipped = np.empty_like(local)
    clipped[:, [0, 2]] = np.clip(local[:, [0, 2]], 0, window.width)
    clipped[:, [1, 3]] = np.clip(local[:, [1, 3]], 0, window.height)
    visible = box_areas(clipped) / np.maximum(box_areas(local), 1e-9)
    big_enough = ((clipped[:, 2] - clipped[:, 0]) >= min_box_px) & (
        (clipped[:, 3] - clipped[:, 1]) >= min_box_px
    )
    keep = np.flatnonzero((visible >= min_visible_fraction) & big_enough & (box_areas(clipped) > 0))
    return clipped[keep], keep
