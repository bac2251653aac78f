"""Dataset statistics: the baseline the drift monitor compares served images against.

Per image: brightness (mean grey level), contrast (standard deviation of grey), sharpness
(variance of the Laplacian) and resolution. Grey levels are measured on the image shrunk by the
smallest integer factor that brings its longer side to at most `STATS_SIDE` pixels, so that
sharpness is comparable between a 4K frame and a 1080p one, and cheap; the monitor must call
`image_statistics` too, to measure the same way.
Per dataset: those values' distribution (summary and histogram, plus the raw values), boxes
per image, and box sizes per class, all measured on source frames (before tiling), since
served requests carry whole frames.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from yolo_core.data.json_io import write_json

STATS_SIDE = 1024
IMAGE_FEATURES = ("brightness", "contrast", "sharpness", "width", "height")
HISTOGRAM_BINS = 20


def image_statistics(image: np.ndarray) -> dict[str, float]:
    """Brightness, contrast, sharpness and resolution of one 8-bit BGR (or grey) image."""
    height, width = image.shape[:2]
    factor = math.ceil(max(height, width) / STATS_SIDE)
    if factor > 1:  # an integer factor keeps OpenCV's fast area-averaging path (~100x faster)
        cropped = image[: height // factor * factor, : width // factor * factor]
        image = cv2.resize(cropped, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    mean, std = cv2.meanStdDev(grey)
    _, laplacian_std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_16S))  # exact for 8-bit input
    return {
        "brightness": round(float(mean[0, 0]), 4),
        "contrast": round(float(std[0, 0]), 4),
        "sharpness": round(float(laplacian_std[0, 0]) ** 2, 4),
        "width": float(width),
        "height": float(height),
    }


def summarize(values: list[float] | np.ndarray) -> dict:
    """Summary and histogram of a sample: enough for PSI or KS tests against new data."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return {"count": 0}
    quantiles = np.quantile(data, [0.05, 0.25, 0.5, 0.75, 0.95])
    low, high = float(data.min()), float(data.max())
    counts, edges = np.histogram(data, bins=HISTOGRAM_BINS, range=(low, high if high > low else low + 1))
    return {
        "count": int(data.size),
        "mean": float(data.mean()),
        "std": float(data.std()),
        "min": low,
        "p05": float(quantiles[0]),
        "p25": float(quantiles[1]),
        "p50": float(quantiles[2]),
        "p75": float(quantiles[3]),
        "p95": float(quantiles[4]),
        "max": high,
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def build_baseline(
    images: list[dict], box_sizes: dict[int, list[tuple[float, float]]], names: dict[int, str]
) -> dict:
    """The baseline document from per-image records (`file`, features, `boxes`) and box sizes."""
    features = {name: summarize([record[name] for record in images]) for name in IMAGE_FEATURES}
    per_class = {}
    for cls, name in names.items():
        sizes = np.asarray(box_sizes.get(cls, []), dtype=np.float64).reshape(-1, 2)
        per_class[name] = {
            "count": int(len(sizes)),
            "width": summarize(sizes[:, 0]),
            "height": summarize(sizes[:, 1]),
            "sqrt_area": summarize(np.sqrt(sizes[:, 0] * sizes[:, 1])),
        }
    return {
        "version": 1,
        "stats_side": STATS_SIDE,
        "image_count": len(images),
        "images": features,
        "boxes_per_image": summarize([record["boxes"] for record in images]),
        "box_sizes_per_class": per_class,
        "per_image": sorted(images, key=lambda record: record["file"]),
    }


def write_baseline(baseline: dict, path: Path) -> Path:
    return write_json(path, baseline)
