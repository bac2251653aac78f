"""Overlapping tiles over a large frame, as pure functions over sizes and arrays.

Tile positions follow SAHI's `get_slice_bboxes`: a fixed step of (1 - overlap) x size, and a last
tile pushed back inside the frame, so that results can be compared one to one with SAHI.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

ArrayLike = TypeVar("ArrayLike")  # a numpy array or a torch tensor: both slice alike


def tile_starts(length: int, size: int, overlap: float) -> list[int]:
    """Start offsets along one axis: every `size - int(overlap * size)` pixels, the last flush."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if size < 1:
        raise ValueError(f"slice size must be positive, got {size}")
    if length <= size:
        return [0]
    step = size - int(overlap * size)
    return [*range(0, length - size, step), length - size]


def tile_grid(height: int, width: int, size: int, overlap: float) -> np.ndarray:
    """(T, 4) int xyxy tiles covering a height x width frame, row by row."""
    tiles = [
        (x, y, min(x + size, width), min(y + size, height))
        for y in tile_starts(height, size, overlap)
        for x in tile_starts(width, size, overlap)
    ]
    return np.asarray(tiles, dtype=np.int64).reshape(-1, 4)


def tile_count(height: int, width: int, size: int, overlap: float) -> int:
    """How many tiles `tile_grid` makes, without making them: the cost of a frame, known from its size."""
    return len(tile_starts(height, size, overlap)) * len(tile_starts(width, size, overlap))


def crop(image: ArrayLike, tile: np.ndarray) -> ArrayLike:
    """A view of the tile (no copy; an array or a device tensor): the letterbox copies it into
    the batch anyway."""
    x0, y0, x1, y1 = (int(v) for v in tile)
    return image[y0:y1, x0:x1]
