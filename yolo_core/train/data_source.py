"""The dataset a run trains on: its data.yaml checked up front, and a hash that identifies it.

Ultralytics reports a broken data.yaml deep inside the trainer (or tries to download a dataset
named in it); checking here gives a `UserInputError` that names the file and the field instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from yolo_core.errors import UserInputError, one_line

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class DataSpec:
    yaml_path: Path
    names: dict[int, str]
    train_dirs: tuple[Path, ...]
    val_dirs: tuple[Path, ...]

    @property
    def class_names(self) -> list[str]:
        return [self.names[i] for i in sorted(self.names)]


def _names(raw: object, path: Path) -> dict[int, str]:
    if isinstance(raw, list):
        raw = dict(enumerate(raw))
    if not isinstance(raw, dict) or not raw:
        raise UserInputError(f"{path}: field 'names' must be a non-empty list or mapping of class names")
    try:
        names = {int(k): str(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        raise UserInputError(f"{path}: field 'names' must map integer class ids to names") from None
    if sorted(names) != list(range(len(names))):
        raise UserInputError(f"{path}: field 'names' must use the class ids 0..{len(names) - 1}")
    return names


def _image_dirs(raw: object, field: str, path: Path) -> tuple[Path, ...]:
    entries = raw if isinstance(raw, list) else [raw]
    if not entries or not all(isinstance(e, str) and e for e in entries):
        raise UserInputError(f"{path}: field '{field}' must be a folder (or list of folders) of images")
    folders = []
    for entry in entries:
        folder = Path(entry) if Path(entry).is_absolute() else path.parent / entry
        if not folder.is_dir():
            raise UserInputError(f"{path}: field '{field}': folder {folder} does not exist")
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.rglob("*")):
            raise UserInputError(f"{path}: field '{field}': folder {folder} holds no images")
        folders.append(folder)
    return tuple(folders)


def read_data_yaml(path: Path) -> DataSpec:
    """Check a data.yaml the way the toolkit writes it (no `path:`, folders relative to the file)."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: data.yaml not found")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserInputError(f"{path}: not valid YAML ({one_line(str(exc))})") from None
    if not isinstance(document, dict):
        raise UserInputError(f"{path}: must be a YAML mapping with train, val and names")
    if "path" in document:
        raise UserInputError(
            f"{path}: field 'path' must be absent (folders are resolved against the yaml's folder, "
            "which keeps the dataset movable)"
        )
    for field in ("train", "val", "names"):
        if field not in document:
            raise UserInputError(f"{path}: field '{field}' is missing")
    return DataSpec(
        yaml_path=path,
        names=_names(document["names"], path),
        train_dirs=_image_dirs(document["train"], "train", path),
        val_dirs=_image_dirs(document["val"], "val", path),
    )


def _label_dir(image_dir: Path) -> Path:
    """Ultralytics finds labels by replacing the last 'images' folder with 'labels'."""
    parts = list(image_dir.parts)
    if "images" in parts:
        index = len(parts) - 1 - parts[::-1].index("images")
        parts[index] = "labels"
    return Path(*parts)


def dataset_hash(spec: DataSpec) -> str:
    """dataset.json's hash when preprocessing wrote one, else a hash of names, images and labels."""
    manifest = spec.yaml_path.parent / "dataset.json"
    if manifest.is_file():
        try:
            recorded = json.loads(manifest.read_text()).get("dataset_hash")
        except (OSError, json.JSONDecodeError, AttributeError):
            recorded = None
        if isinstance(recorded, str) and recorded:
            return recorded
    digest = hashlib.sha256(json.dumps(spec.names, sort_keys=True).encode())
    for split, folders in (("train", spec.train_dirs), ("val", spec.val_dirs)):
        for folder in folders:
            for root in (folder, _label_dir(folder)):
                if not root.is_dir():
                    continue
                for file in sorted(p for p in root.rglob("*") if p.is_file()):
                    with open(file, "rb") as handle:
                        content = hashlib.file_digest(handle, "sha256").hexdigest()
                    digest.update(f"{split}/{file.relative_to(root)}:{content}\n".encode())
    return digest.hexdigest()


def write_data_yaml(out_path: Path, train_images: Path, val_images: Path, names: dict[int, str]) -> Path:
    """A data.yaml for separate train/val folders (e.g. SageMaker channels), absolute, no `path:`."""
    document = {"train": str(train_images), "val": str(val_images), "names": dict(names)}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(yaml.safe_dump(document, sort_keys=False))
    return out_path
