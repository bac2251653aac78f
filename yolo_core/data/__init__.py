"""The drone data layer: synthetic scenes, converters, tiling, validation, statistics, split.

The two calls most code needs: `generate_scenes(...)` writes synthetic VisDrone-DET frames and
`build_dataset(...)` turns a VisDrone, COCO or YOLO folder into the training layout.
"""

from yolo_core.data.dataset import DatasetResult, build_dataset
from yolo_core.data.synthetic import generate_scenes

__all__ = ["DatasetResult", "build_dataset", "generate_scenes"]
