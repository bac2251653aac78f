"""Small helpers for the data-layer tests: tiny images and label files written by hand."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def write_image(path: Path, width: int = 200, height: int = 100, channels: int = 3, dtype=np.uint8) -> Path:
    """A textured image (so JPEG sizes are realistic) with a fixed pattern."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(path.name))
    shape = (height, width) if channels == 1 else (height, width, channels)
    top = 65535 if dtype == np.uint16 else 255
    image = rng.integers(0, top, shape).astype(dtype)
    assert cv2.imwrite(str(path), image)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_json(path: Path, document: dict) -> Path:
    return write_text(path, json.dumps(document))


def read_report(dataset_dir: Path) -> dict:
    return json.loads((dataset_dir / "quality_report.json").read_text())


def issues_of(report: dict, file: str) -> list[tuple[str, int | None, str]]:
    """(kind, line, severity) of each finding about `file`, in report order."""
    return [(i["kind"], i["line"], i["severity"]) for i in report["issues"] if i["file"] == file]


def label_lines(dataset_dir: Path, split: str, stem: str) -> list[str]:
    return (dataset_dir / "labels" / split / f"{stem}.txt").read_text().splitlines()
