"""Deterministic choices keyed by content: train/val split and which empty tiles to keep.

Why hashing: a frame's split depends only on its bytes and the seed, not on file order or on
the other frames, so adding images never moves old ones between train and val (no leakage
between runs), and every tile of a frame lands in the frame's split.
"""

from __future__ import annotations

import hashlib


def unit_hash(*parts: object) -> float:
    """A stable number in [0, 1) from the parts (not Python's salted `hash`)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_key(content_digest: str, seed: int) -> float:
    return unit_hash("split", seed, content_digest)


def split_of(key: float, val_fraction: float) -> str:
    return "val" if key < val_fraction else "train"


def keep_empty_tile(frame: str, x: int, y: int, seed: int, empty_tile_ratio: float) -> bool:
    """Keep about `empty_tile_ratio` of the tiles without targets, the same ones on every run."""
    return unit_hash("empty", seed, frame, x, y) < empty_tile_ratio
