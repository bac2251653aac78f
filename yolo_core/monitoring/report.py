"""The monitoring run's HTML report, and the choice of served images that show the drift.

Why one self-contained file: the report is opened from S3, an MLflow run or an e-mail, where
linked files and CDNs don't follow; every plot and example is embedded as a data URI. Everything
from data (feature and class names, captions, summary values) is HTML-escaped, since class names
and captions come from datasets and callers this module does not control.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolo_core.monitoring.checks import Check
from yolo_core.monitoring.image_drift import DRIFT_FEATURES, feature_values
from yolo_core.monitoring.image_drift import PREFIX as IMAGE_PREFIX
from yolo_core.monitoring.prediction_drift import NUMERIC
from yolo_core.monitoring.prediction_drift import PREFIX as PREDICTION_PREFIX
from yolo_core.monitoring.report_plots import class_mix_png, draw_detections, histogram_png, jpeg_bytes

UNITS = {  # the x axis of each plot; a feature missing here is labelled with its own name
    "brightness": "grey level",
    "contrast": "grey level",
    "sharpness": "Laplacian variance",
    "width": "pixels",
    "height": "pixels",
    "aspect": "width / height",
    "confidence": "score",
    "boxes_per_image": "boxes",
    "sqrt_area": "sqrt(box area), pixels",
}
CHECK_COLUMNS = (
    "feature", "test", "statistic", "Holm-adjusted p", "alpha", "effect", "value", "minimum", "verdict",
    "description",
)  # fmt: skip


@dataclass(frozen=True)
class Example:
    """A served image to show, the model's detections on it, and why it was picked."""

    image: np.ndarray  # BGR uint8
    detections: list[dict]  # {class_name, score, box: [x1, y1, x2, y2]} in source pixels
    caption: str


def most_drifted(
    served_images: Sequence[dict], baseline: dict, checks: Sequence[Check], k: int = 6
) -> list[tuple[int, str]]:
    """Indexes of the k served images most typical of the violated image checks, with why.

    An image scores, per violated statistic, its distance from the baseline median in baseline
    inter-quartile ranges, counted in the direction the served median moved (the raw unit when the
    baseline's IQR is 0, as for one camera's resolution); its score is the maximum over those
    statistics. Only images beyond the median in that direction are picked; ties go to the lower index.
    """
    violated = {c.feature_name.removeprefix(IMAGE_PREFIX) for c in checks if c.violated}
    reference = baseline.get("per_image", [])
    scored = [
        (name, *_drift_scores(feature_values(reference, name), _aligned(served_images, name)))
        for name in DRIFT_FEATURES
        if name in violated and served_images
    ]
    scored = [row for row in scored if row[1] is not None]
    if not scored:
        return []
    table = np.vstack([scores for _, scores, _ in scored])
    best, score = np.argmax(table, axis=0), np.max(table, axis=0)
    order = [int(i) for i in np.argsort(-score, kind="stable") if score[i] > 0][:k]
    captions = []
    for i in order:
        name, _, median = scored[best[i]]
        value = _aligned(served_images[i : i + 1], name)[0]
        captions.append((i, f"{name} {_number(value)} (baseline median {_number(median)})"))
    return captions


def _drift_scores(base: np.ndarray, served: np.ndarray) -> tuple[np.ndarray | None, float]:
    """Each served value's distance from the baseline median, in baseline IQRs, towards the side
    the served median moved to (-inf where an image has no value); None without a baseline."""
    if base.size == 0 or not np.isfinite(served).any():
        return None, float("nan")
    median = float(np.median(base))
    spread = float(np.subtract(*np.percentile(base, [75, 25])))
    direction = np.sign(np.nanmedian(served) - median)
    distance = (served - median) * direction if direction else np.abs(served - median)
    return np.nan_to_num(distance / (spread if spread > 0 else 1.0), nan=-np.inf), median


def write_html_report(
    path: Path,
    checks: Sequence[Check],
    baseline: dict,
    served_images: Sequence[dict],
    reference_profile: dict | None,
    served_profile: dict | None,
    examples: Sequence[Example],
    summary: Mapping[str, str | int | float],
) -> Path:
    """One self-contained HTML page: the run's summary, every check (violated first), a plot per
    image statistic and, given both profiles, per prediction feature, and the example images."""
    by_feature = {check.feature_name: check for check in checks}
    violated = sum(check.violated for check in checks)
    sections = [
        f"<h1>Monitoring report</h1>\n<p class='verdict'>{violated} of {len(checks)} checks violated</p>",
        _section("Summary", _summary_table(summary)),
        _section("Checks", _checks_table(checks)),
        _section(
            "Image statistics: baseline against served", _image_plots(baseline, served_images, by_feature)
        ),
    ]
    if reference_profile is not None and served_profile is not None:
        plots = _prediction_plots(reference_profile, served_profile, by_feature)
        sections.append(_section("Predictions: reference against served", plots))
    if examples:
        sections.append(_section("Served images most typical of the drift", _examples(examples)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_page("\n".join(sections)), encoding="utf-8")
    return path


def _aligned(records: Sequence[dict], name: str) -> np.ndarray:
    """One value per record, NaN where it has none (aspect of a zero height), so indexes stay valid."""
    values = feature_values(records, name)
    if values.size == len(records):
        return values
    return np.array([(feature_values([r], name).tolist() or [np.nan])[0] for r in records], float)


def _summary_table(summary: Mapping[str, str | int | float]) -> str:
    rows = "".join(f"<tr><th>{_text(key)}</th><td>{_text(value)}</td></tr>" for key, value in summary.items())
    return f"<table class='summary'>{rows}</table>"


def _checks_table(checks: Sequence[Check]) -> str:
    rows = []
    for check in sorted(checks, key=lambda c: not c.violated):  # stable: the run's order otherwise
        row_class = "violated" if check.violated else "passed"
        rows.append(
            f"<tr class='{row_class}'>" + "".join(f"<td>{_text(c)}</td>" for c in _cells(check)) + "</tr>"
        )
    if not rows:
        rows.append(f"<tr><td colspan='{len(CHECK_COLUMNS)}'>no checks in this run</td></tr>")
    head = "".join(f"<th>{name}</th>" for name in CHECK_COLUMNS)
    return f"<table class='checks'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cells(check: Check) -> tuple[str, ...]:
    return (
        check.feature_name,
        check.test,
        f"{check.statistic:.4g}",
        f"{check.p_value:.3g}",
        f"{check.threshold:g}",
        check.effect_name,
        f"{check.effect:.4g}",
        f"{check.min_effect:g}",
        "drift" if check.violated else "no drift",
        check.description,
    )


def _image_plots(baseline: dict, served_images: Sequence[dict], by_feature: Mapping[str, Check]) -> str:
    reference = baseline.get("per_image", [])
    figures = []
    for name in DRIFT_FEATURES:
        title = _title(name, by_feature.get(IMAGE_PREFIX + name))
        png = histogram_png(
            feature_values(reference, name), feature_values(served_images, name), title, UNITS.get(name, name)
        )
        figures.append(_figure(png, "image/png", "image-statistic", title))
    return f"<div class='grid'>{''.join(figures)}</div>"


def _prediction_plots(reference: dict, served: dict, by_feature: Mapping[str, Check]) -> str:
    figures = []
    for name in NUMERIC:
        title = _title(name, by_feature.get(PREDICTION_PREFIX + name))
        png = histogram_png(reference.get(name, []), served.get(name, []), title, UNITS.get(name, name))
        figures.append(_figure(png, "image/png", "prediction", title))
    title = _title("class mix", by_feature.get(PREDICTION_PREFIX + "class_mix"))
    png = class_mix_png(reference.get("class_counts", {}), served.get("class_counts", {}), title)
    figures.append(_figure(png, "image/png", "prediction", title))
    return f"<div class='grid'>{''.join(figures)}</div>"


def _examples(examples: Sequence[Example]) -> str:
    figures = []
    for example in examples:
        jpeg = jpeg_bytes(draw_detections(example.image, example.detections))
        figures.append(_figure(jpeg, "image/jpeg", "example", example.caption))
    return f"<div class='grid'>{''.join(figures)}</div>"


def _figure(data: bytes, mime: str, kind: str, caption: str) -> str:
    source = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return (
        f"<figure><img class='{kind}' src='{source}' alt='{_text(caption)}'>"
        f"<figcaption>{_text(caption)}</figcaption></figure>"
    )


def _title(name: str, check: Check | None) -> str:
    if check is None:
        return f"{name}: not checked"
    verdict = "DRIFT" if check.violated else "no drift"
    return f"{name}: {verdict} (p {check.p_value:.2g}, {check.effect_name} {check.effect:.3f})"


def _section(heading: str, body: str) -> str:
    return f"<section><h2>{heading}</h2>\n{body}\n</section>"


def _text(value: object) -> str:
    text = f"{value:.6g}" if isinstance(value, float) else str(value)
    return html.escape(text, quote=True)


def _number(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def _page(body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Monitoring report</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1em; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }}
tr.violated {{ background: #fde0dc; font-weight: bold; }}
.verdict {{ font-size: 1.1em; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; max-width: 100%; }}
figure img {{ max-width: 100%; height: auto; }}
figcaption {{ font-size: 0.8em; color: #444; max-width: 500px; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
