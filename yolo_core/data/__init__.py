"""The drone data layer: synthetic scenes, converters, tiling, validation, statistics, split.

The two calls most code needs: `generate_scenes(...)` writes synthetic VisDrone-DET frames and
`build_dataset(...)` turns a VisDrone, COCO or YOLO folder into the training layout. They are
imported on first use, so a command line that only checks its flags (`ranges`) starts at once.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from yolo_core.data.dataset import DatasetResult, build_dataset
    from yolo_core.data.synthetic import generate_scenes

_HOMES = {
    "DatasetResult": "yolo_core.data.dataset",
    "build_dataset": "yolo_core.data.dataset",
    "generate_scenes": "yolo_core.data.synthetic",
}
__all__ = ["DatasetResult", "build_dataset", "generate_scenes"]


def __getattr__(name: str) -> object:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
