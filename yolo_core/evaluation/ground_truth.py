"""Read a YOLO-layout dataset split (data.yaml, images/<split>, labels/<split>) as pixel boxes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from yolo_core.errors import UserInputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class DatasetSplit:
    names: dict[int, str]
    image_files: list[Path]


@dataclass
class GroundTruth:
    boxes: np.ndarray  # (M, 4) float32 xyxy pixels
    class_ids: np.ndarray  # (M,) int64


def read_data_yaml(dataset_dir: Path) -> dict:
    path = Path(dataset_dir) / "data.yaml"
    if not path.is_file():
        raise UserInputError(f"{path}: data.yaml is missing from the dataset folder")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserInputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or "names" not in data:
        raise UserInputError(f"{path}: must be a mapping with a 'names' field")
    return data


def _names(data: dict, path: Path) -> dict[int, str]:
    names = data["names"]
    if isinstance(names, list):
        return dict(enumerate(str(n) for n in names))
    if isinstance(names, dict):
        try:
            return {int(k): str(v) for k, v in names.items()}
        except ValueError:
            pass
    raise UserInputError(f"{path}: field 'names' must be a list or a mapping of class ids to names")


def load_split(dataset_dir: Path, split: str = "val") -> DatasetSplit:
    """The class names and the sorted image files of a split named in data.yaml."""
    dataset_dir = Path(dataset_dir)
    data = read_data_yaml(dataset_dir)
    yaml_path = dataset_dir / "data.yaml"
    if split not in data:
        raise UserInputError(f"{yaml_path}: no '{split}' split in data.yaml")
    root = dataset_dir / data["path"] if data.get("path") else dataset_dir
    entries = data[split] if isinstance(data[split], list) else [data[split]]
    image_files: list[Path] = []
    for entry in entries:
        folder = root / str(entry)
        if not folder.is_dir():
            raise UserInputError(f"{yaml_path}: '{split}' folder {folder} does not exist")
        image_files += sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not image_files:
        raise UserInputError(f"{yaml_path}: the '{split}' split has no images")
    return DatasetSplit(_names(data, yaml_path), image_files)


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
