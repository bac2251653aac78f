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


def clip_to_windows(
    boxes: np.ndarray, windows: list[Window], min_visible_fraction: float, min_box_px: float = 1.0
) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """For each window: boxes seen through it (tile coordinates), their indices, and how many
    boxes touched it at all. One vectorised pass over all windows, since frames have hundreds
    of boxes and dozens of tiles.

    A box is kept when the part inside the window is at least `min_visible_fraction` of its
    area and at least `min_box_px` wide and high.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    origins = np.array([[w.x, w.y, w.x, w.y] for w in windows], dtype=np.float64).reshape(-1, 1, 4)
    limits = np.array([[w.width, w.height, w.width, w.height] for w in windows], dtype=np.float64)
    local = boxes[None, :, :] - origins  # (windows, boxes, 4)
    clipped = np.clip(local, 0, limits[:, None, :])
    widths, heights = clipped[..., 2] - clipped[..., 0], clipped[..., 3] - clipped[..., 1]
    full = np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1e-9)
    inside = widths * heights
    keep = (
        (inside >= min_visible_fraction * full)
        & (widths >= min_box_px)
        & (heights >= min_box_px)
        & (inside > 0)
    )
    results = []
    for i in range(len(windows)):
        kept = np.flatnonzero(keep[i])
        results.append((clipped[i, kept], kept, int(np.count_nonzero(inside[i] > 0))))
    return results


def clip_to_window(
    boxes: np.ndarray, window: Window, min_visible_fraction: float, min_box_px: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes seen through one window, in tile coordinates, and the indices of the kept boxes."""
    clipped, kept, _ = clip_to_windows(boxes, [window], min_visible_fraction, min_box_px)[0]
    return clipped, kept
