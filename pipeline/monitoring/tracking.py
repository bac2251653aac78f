"""A monitoring run in MLflow, linked both ways to the model version it watched.

Why both ways: a person looking at a model version wants its latest monitoring verdict (the version
carries `monitoring.last_run_id` and `monitoring.last_violations`), and a person looking at a run
wants the version it judged (the run carries `model_name` and `model_version`). The run holds every
check as metrics (its effect and Holm-adjusted p-value), the window as params, and the whole
results folder (report.html, checks.json, constraint_violations.json, statistics.json) as artifacts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.tracking import PipelineTracking
from yolo_core.retry import TRACKING, call_with_retry

RUN_KIND = "monitoring"
_METRIC_UNSAFE = re.compile(r"[^0-9A-Za-z_\-. /]")  # what MLflow accepts in a metric key


def metric_key(prefix: str, feature_name: str) -> str:
    return f"{prefix}.{_METRIC_UNSAFE.sub('_', feature_name)}"


def check_metrics(checks: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """checks.json's rows as metrics: each check's effect and adjusted p-value, and the count."""
    metrics = {"violations": float(sum(bool(check["violated"]) for check in checks))}
    for check in checks:
        metrics[metric_key("effect", check["feature_name"])] = float(check["effect"])
        metrics[metric_key("p", check["feature_name"])] = float(check["p_value"])
    return metrics


def artifact_root(tracking_uri: str) -> Path:
    """Where a new experiment keeps its artifacts: beside a sqlite store (as the pipeline's), else
    the working folder (a tracking server keeps its own)."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlflow-artifacts"
    return Path(os.getcwd()) / "mlflow-artifacts"


def log_monitoring_run(
    tracking_uri: str,
    experiment: str,
    model_name: str,
    model_version: str,
    run_summary: Mapping[str, Any],
    checks: Sequence[Mapping[str, Any]],
    results_dir: Path,
) -> str:
    """One finished MLflow run for a monitoring run; returns its id. An empty model_version logs
    the run without the link (a monitor pointed at references, not at a registered version)."""
    tracking = PipelineTracking(tracking_uri, experiment, artifact_root(tracking_uri))
    violations = sum(bool(check["violated"]) for check in checks)
    link = {"model_name": model_name, "model_version": model_version} if model_version else {}
    run_id = tracking.start(
        f"monitoring {run_summary.get('start', '')} - {run_summary.get('end', '')}".strip(),
        {key: value for key, value in run_summary.items() if value is not None},
        {"kind": RUN_KIND, "violations": violations, **link},
    )
    tracking.log_metrics(run_id, check_metrics(checks))
    tracking.log_artifacts(run_id, results_dir, "monitoring")
    tracking.finish(run_id)
    if model_version:
        tag = tracking.client.set_model_version_tag
        for key, value in (("monitoring.last_run_id", run_id), ("monitoring.last_violations", violations)):
            call_with_retry(tag, model_name, model_version, key, str(value), policy=TRACKING)
    return run_id
