"""Read a YOLO-layout dataset split (data.yaml, images/<split>, labels/<split>) as pixel boxes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolo_core.errors import UserInputError
from yolo_core.train.data_source import IMAGE_SUFFIXES, DataSpec, read_data_yaml


@dataclass(frozen=True)
class DatasetSplit:
    spec: DataSpec
    image_files: list[Path]

    @property
    def names(self) -> dict[int, str]:
        return self.spec.names


@dataclass
class GroundTruth:
    boxes: np.ndarray  # (M, 4) float32 xyxy pixels
    class_ids: np.ndarray  # (M,) int64


def load_split(dataset_dir: Path, split: str = "val") -> DatasetSplit:
    """The checked data.yaml (training's own reader) and the sorted image files of one split."""
    yaml_path = Path(dataset_dir) / "data.yaml"
    if not yaml_path.is_file():
        raise UserInputError(f"{yaml_path}: data.yaml is missing from the dataset folder")
    spec = read_data_yaml(yaml_path)
    folders = {"train": spec.train_dirs, "val": spec.val_dirs}.get(split)
    if folders is None:
        raise UserInputError(f"{yaml_path}: split {split!r} is not one of train, val")
    files = sorted(p for folder in folders for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return DatasetSplit(spec, files)


def label_file_for(image_file: Path) -> Path:
    """Ultralytics' rule: the last /images/ in the path becomes /labels/, the suffix .txt."""
    parts = list(image_file.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def read_labels(label_file: Path, width: int, height: int, num_classes: int) -> GroundTruth:
    """YOLO txt rows `class cx cy w h` (normalised) as pixel xyxy; a missing file means no objects."""
    rows: list[list[float]] = []
    if label_file.exists():
        for line_number, line in enumerate(label_file.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                values = [float(v) for v in fields[:5]]
            except ValueError:
                values = []
            if len(values) != 5 or not 0 <= values[0] < num_classes or values[0] != int(values[0]):
                raise UserInputError(f"{label_file}:{line_number}: expected 'class cx cy w h', got {line!r}")
            rows.append(values)
    table = np.asarray(rows, dtype=np.float32).reshape(-1, 5)
    cx, cy, w, h = (table[:, i] for i in range(1, 5))
    boxes = np.stack(
        [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], 1
    )
    return GroundTruth(boxes.astype(np.float32), table[:, 0].astype(np.int64))
