"""The monitoring report's pictures: overlaid histograms, class-mix bars, detections drawn on images.

Why apart from the page: each function turns data into PNG or JPEG bytes (or pixels) and nothing
else, so the HTML assembly stays text and the drawing can be tested on pixels. Figures are built
on an Agg canvas directly, never through pyplot: no figure is registered anywhere, so none
outlives its call and the process's backend and state are left as they were.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

BASELINE_COLOUR, SERVED_COLOUR = "#4c72b0", "#dd8452"
BINS = 40
TAIL = (0.5, 99.5)  # percentiles bounding the bins: outliers land in the end bins, not in the range
MAX_BARS = 20  # classes beyond the most frequent are pooled, or the labels become unreadable
EXAMPLE_SIDE = 960  # longest side of an embedded example: enough to see boxes, small in the page
JPEG_QUALITY = 85
FIGSIZE, DPI = (5.0, 3.0), 100
# BGR colours that stay visible on aerial scenes; a class keeps its colour across images and runs.
PALETTE = (
    (0, 215, 255), (255, 191, 0), (60, 20, 220), (50, 205, 50), (255, 0, 255),
    (0, 140, 255), (255, 255, 0), (147, 20, 255), (0, 255, 127), (203, 192, 255),
)  # fmt: skip


def shared_bins(reference: np.ndarray, current: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Bin edges both samples are counted on, spanning each sample's central 99% (so neither
    piles its tail into an end bin): one bin per value for small integer ranges (boxes per image,
    resolutions), else `bins` equal bins."""
    samples = [values[np.isfinite(values)] for values in (reference, current)]
    samples = [values for values in samples if values.size]
    if not samples:
        return np.array([0.0, 1.0])
    low = min(float(np.percentile(values, TAIL[0])) for values in samples)
    high = max(float(np.percentile(values, TAIL[1])) for values in samples)
    if high - low <= 2 * bins and all(np.array_equal(values, np.round(values)) for values in samples):
        return np.arange(np.floor(low) - 0.5, np.ceil(high) + 1.0)
    if high <= low:
        return np.array([low - 0.5, low + 0.5])
    return np.linspace(low, high, bins + 1)


def density(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Density over the edges, values beyond them counted in the end bins (so tails still show)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.zeros(edges.size - 1)
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), edges)
    return counts / (values.size * np.diff(edges))


def histogram_png(reference: Sequence[float], current: Sequence[float], title: str, xlabel: str) -> bytes:
    """Baseline and served samples as overlaid density histograms on shared bins."""
    reference, current = np.asarray(reference, float), np.asarray(current, float)
    edges = shared_bins(reference, current)
    figure, axes = _figure()
    for values, label, colour in (
        (reference, "baseline", BASELINE_COLOUR),
        (current, "served", SERVED_COLOUR),
    ):
        axes.stairs(
            density(values, edges),
            edges,
            fill=True,
            alpha=0.45,
            color=colour,
            label=f"{label} (n={values.size})",
        )
    axes.xaxis.get_major_formatter().set_useOffset(False)  # "1920", not "0 + 1.92e3"
    axes.set_xlabel(plain(xlabel))
    axes.set_ylabel("density")
    axes.legend(fontsize=8)
    return _png(figure, axes, title)


def class_mix_png(reference: Mapping[str, int], current: Mapping[str, int], title: str) -> bytes:
    """Each class's share of the boxes, baseline and served side by side."""
    names = sorted(set(reference) | set(current), key=lambda name: (-reference.get(name, 0), name))
    shown, pooled = names[:MAX_BARS], names[MAX_BARS:]
    figure, axes = _figure(bottom=0.26)  # room for the rotated class names
    positions = np.arange(len(shown) + (1 if pooled else 0))
    for offset, counts, label, colour in (
        (-0.2, reference, "baseline", BASELINE_COLOUR),
        (0.2, current, "served", SERVED_COLOUR),
    ):
        total = sum(counts.values()) or 1
        shares = [counts.get(name, 0) / total for name in shown]
        if pooled:
            shares.append(sum(counts.get(name, 0) for name in pooled) / total)
        axes.bar(
            positions + offset, shares, width=0.4, color=colour, label=f"{label} (n={sum(counts.values())})"
        )
    labels = [plain(name) for name in shown] + (["(other)"] if pooled else [])
    axes.set_xticks(positions, labels, rotation=40, ha="right", fontsize=7)
    axes.set_ylabel("share of boxes")
    axes.legend(fontsize=8)
    return _png(figure, axes, title)


def draw_detections(
    image: np.ndarray, detections: Sequence[dict], max_side: int = EXAMPLE_SIDE
) -> np.ndarray:
    """A copy of the image, shrunk to `max_side`, with each box and its "class score" label; boxes
    are in the source image's pixels. Shrinking before drawing keeps lines and labels legible."""
    canvas = _bgr(image)
    scale = min(1.0, max_side / max(canvas.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(canvas.shape[1] * scale)), max(1, round(canvas.shape[0] * scale)))
        canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_AREA)
    else:
        canvas = canvas.copy()
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    font_scale = max(0.4, max(canvas.shape[:2]) / 1600)
    for row in detections:
        x1, y1, x2, y2 = (round(float(v) * scale) for v in row["box"])
        colour = class_colour(str(row["class_name"]))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        label = f"{row['class_name']} {float(row['score']):.2f}"
        (width, height), baseline = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = y1 - height - baseline if y1 - height - baseline >= 0 else y1  # inside when no room above
        cv2.rectangle(canvas, (x1, top), (x1 + width, top + height + baseline), colour, -1)
        cv2.putText(
            canvas, label, (x1, top + height), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    return canvas


def class_colour(name: str) -> tuple[int, int, int]:
    """A class's colour, the same in every process (crc32, not the salted `hash`)."""
    return PALETTE[zlib.crc32(name.encode("utf-8")) % len(PALETTE)]


def jpeg_bytes(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as JPEG")
    return encoded.tobytes()


def plain(text: str) -> str:
    """Text shown literally by matplotlib: a `$` in a class or feature name would start mathtext."""
    return text.replace("$", r"\$")


def _bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _figure(bottom: float = 0.16) -> tuple[Figure, object]:
    figure = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(figure)  # the Agg canvas, named explicitly rather than picked by the backend
    # fixed margins: tight_layout measured every label again and took half of each plot's time
    figure.subplots_adjust(left=0.16, right=0.97, top=0.9, bottom=bottom)
    return figure, figure.subplots()


def _png(figure: Figure, axes: object, title: str) -> bytes:
    axes.set_title(plain(title), fontsize=9)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")  # never registered with pyplot: freed when it goes out of scope
    return buffer.getvalue()
