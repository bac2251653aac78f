"""One monitoring run over a window of captured traffic: read, measure, test, write the documents.

Why one function: the `monitor` entry point (Model Monitor's contract and the monitoring pipeline's
step), the benchmark and the tests run exactly this; the entry point only turns its contract into
`MonitorInputs`. Everything a run writes lands in `output`: Model Monitor's statistics.json and
constraint_violations.json, checks.json (every check), run.json (the window, the counts, the
monitored model quality) and report.html.

Cost: the window is read once (decode, image statistics, detections from the captured answers);
only a random sample of at most `EMBEDDED_IMAGES` served images is decoded again and passed
through the backbone, and only the report's few example images after that. So monitoring ten
thousand requests costs ten thousand decodes and a few hundred backbone passes, well under what
serving them cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from yolo_core.data.json_io import write_json
from yolo_core.model_card import ModelCard
from yolo_core.monitoring.capture import ImageSource, Window, read_images, read_window
from yolo_core.monitoring.checks import Check
from yolo_core.monitoring.constraints import Constraints
from yolo_core.monitoring.documents import checks_document, statistics_document, violations_document
from yolo_core.monitoring.drift import ResampledTests, drift_checks
from yolo_core.monitoring.embedding_drift import MAX_ROWS, reference_vectors
from yolo_core.monitoring.prediction_drift import prediction_profile
from yolo_core.monitoring.report import Example, most_drifted, write_html_report

EMBEDDED_IMAGES = MAX_ROWS  # the MMD test subsamples to this many anyway
EXAMPLES = 6
SAMPLE_SEED = 0
RUN_FILE, REPORT_FILE, CHECKS_FILE = "run.json", "report.html", "checks.json"


@dataclass(frozen=True)
class MonitorInputs:
    capture: Path
    baseline: dict
    constraints: Constraints
    output: Path
    start: datetime | None = None
    end: datetime | None = None
    model_dir: Path | None = None  # for the embeddings; None: no embedding check
    ground_truth: Path | None = None  # labels by inference id; None: no quality checks
    description: dict[str, str] | None = None  # what the report's summary adds (endpoint, version)


@dataclass(frozen=True)
class MonitoringResult:
    window: Window
    checks: list[Check]
    summary: dict

    @property
    def violated(self) -> list[str]:
        return [check.feature_name for check in self.checks if check.violated]


def run_monitoring(inputs: MonitorInputs) -> MonitoringResult:
    """The whole run; raises UserInputError (naming the input) on an unusable input."""
    constraints = inputs.constraints
    window = read_window(inputs.capture, inputs.start, inputs.end)
    served = prediction_profile(window.detections, window.names)
    reference_embeddings = served_embeddings = None
    if inputs.model_dir is not None and constraints.embedding_reference is not None:
        reference_embeddings = reference_vectors(constraints.embedding_reference, "embedding_reference")
        served_embeddings = embed_sample(inputs.model_dir, window.sources)
    quality_tests, quality = _quality(inputs, window)
    checks = drift_checks(
        inputs.baseline,
        window.images,
        constraints.prediction_profile,
        served if constraints.prediction_profile is not None else None,
        constraints.policy,
        reference_embeddings,
        served_embeddings,
        resampled=quality_tests,
    )
    summary = run_summary(inputs, window, checks, quality)
    write_documents(inputs, window, served, checks, summary)
    return MonitoringResult(window, checks, summary)


def embed_sample(model_dir: Path, sources: Sequence[ImageSource]) -> np.ndarray:
    """Backbone embeddings of at most EMBEDDED_IMAGES served images, drawn at random (seeded)."""
    from yolo_core.monitoring.embeddings import BackboneEmbedder

    rng = np.random.default_rng(SAMPLE_SEED)
    chosen = sorted(rng.choice(len(sources), min(len(sources), EMBEDDED_IMAGES), replace=False))
    images = [image for image, _ in read_images([sources[i] for i in chosen])]
    return BackboneEmbedder.from_model_dir(model_dir).embed(images)


def _quality(inputs: MonitorInputs, window: Window) -> tuple[list[ResampledTests], dict | None]:
    """The quality tests, when ground truth and a registered evaluation are both there, and the
    monitored metrics they fill in when `drift_checks` runs them; otherwise none (and why, for
    run.json)."""
    registered = inputs.constraints.registered_evaluation
    if inputs.ground_truth is None:
        return [], None
    if registered is None:
        return [], {"skipped": "the constraints document has no registered_evaluation to compare with"}
    from yolo_core.monitoring.ground_truth import read_ground_truth
    from yolo_core.monitoring.quality import REGISTERED, join_ground_truth, quality_outcomes

    names = _class_names(inputs, window)
    truth = read_ground_truth(inputs.ground_truth, len(names))
    served = [(s.inference_id, s.index, d) for s, d in zip(window.sources, window.detections, strict=True)]
    pairs, unmatched = join_ground_truth(served, truth)
    if not pairs:
        return [], {"skipped": f"no served image has ground truth ({dict(unmatched)})"}
    monitored: dict = {}

    def run(resamples: int) -> list:
        outcomes, metrics = quality_outcomes(
            pairs, names, registered, float(registered["serving_conf"]), resamples=resamples
        )
        monitored.update({**metrics, "unmatched": dict(unmatched)})
        return outcomes

    return [ResampledTests(len(REGISTERED), run)], monitored


def _class_names(inputs: MonitorInputs, window: Window) -> dict[int, str]:
    """The model's classes (its card), else those the answers named."""
    if inputs.model_dir is not None:
        return ModelCard.load(inputs.model_dir).names
    top = max(window.names, default=-1)
    return {i: window.names.get(i, str(i)) for i in range(top + 1)}


def run_summary(inputs: MonitorInputs, window: Window, checks: Sequence[Check], quality: dict | None) -> dict:
    """run.json: the window (its bounds, or the first and last record's time when unbounded)."""
    start, end = inputs.start or window.first_time, inputs.end or window.last_time
    return {
        **(inputs.description or {}),
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "records": window.records,
        "images": len(window.images),
        "left_out": window.left_out_text() or "none",
        "checks": len(checks),
        "violations": sum(check.violated for check in checks),
        **({"quality": quality} if quality else {}),
    }


def write_documents(
    inputs: MonitorInputs, window: Window, served: dict, checks: list[Check], summary: dict
) -> None:
    output = inputs.output
    profile = inputs.constraints.prediction_profile
    write_json(output / "statistics.json", statistics_document(window.images, served if profile else None))
    write_json(output / "constraint_violations.json", violations_document(checks))
    write_json(output / CHECKS_FILE, checks_document(checks))
    write_json(output / RUN_FILE, summary)
    examples = [
        Example(image, rows, caption)
        for (image, rows), (_, caption) in zip(*_examples(window, inputs.baseline, checks), strict=True)
    ]
    flat = {key: str(value) for key, value in summary.items() if not isinstance(value, dict)}
    write_html_report(
        output / REPORT_FILE, checks, inputs.baseline, window.images, profile, served, examples, flat
    )


def _examples(window: Window, baseline: dict, checks: Sequence[Check]) -> tuple[list, list]:
    picked = most_drifted(window.images, baseline, checks, EXAMPLES)
    return read_images([window.sources[i] for i, _ in picked]), picked
