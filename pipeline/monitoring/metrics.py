"""A monitoring run's figures as CloudWatch metrics, one series per endpoint, feature and statistic,
so that dashboards and alarms follow drift from run to run, not only when a run finds violations.

The figures come in two shapes: a mapping feature -> {statistic: value} (what the drift code
computes), and the metric lines a Model Monitor bring-your-own container writes under
/opt/ml/output/metrics/cloudwatch (one JSON object a line, close to PutMetricData's `MetricDatum`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from yolo_core.errors import UserInputError

LOG = logging.getLogger(__name__)

MAX_DATA_PER_CALL = 1000  # PutMetricData's limit on items in one request
_DATUM_FIELDS = ("MetricName", "Timestamp", "Dimensions", "Value", "StatisticValues", "Unit")


def dimensions(endpoint: str, feature: str | None = None) -> list[dict[str, str]]:
    """Endpoint, and Feature where the figure is about one feature (a run's totals are not)."""
    named = [("Endpoint", endpoint)] + ([("Feature", feature)] if feature else [])
    return [{"Name": name, "Value": value} for name, value in named]


def _finite(value: float, what: str) -> bool:
    """CloudWatch refuses NaN and infinities, and one of them would fail the whole request."""
    if math.isfinite(value):
        return True
    LOG.warning("metric %s is %s: not sent to CloudWatch", what, value)
    return False


def metric_data(
    endpoint: str, metrics: Mapping[str, Mapping[str, float]], at: datetime
) -> list[dict[str, Any]]:
    """PutMetricData items for feature -> {statistic: value}, all stamped `at` (the window's end)."""
    return [
        {
            "MetricName": name,
            "Timestamp": at,
            "Value": float(value),
            "Dimensions": dimensions(endpoint, feature),
        }
        for feature, statistics in metrics.items()
        for name, value in statistics.items()
        if _finite(float(value), f"{feature}/{name}")
    ]


def _timestamp(value: Any, where: str) -> datetime:
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC)
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise UserInputError(
            f"{where}: Timestamp {value!r} is not an ISO 8601 time or epoch seconds"
        ) from None


def _datum(line: str, endpoint: str, where: str) -> dict[str, Any]:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{where}: not a JSON metric line ({exc.msg})") from None
    if not isinstance(raw, dict) or not raw.get("MetricName") or "Timestamp" not in raw:
        raise UserInputError(f"{where}: a metric line needs MetricName and Timestamp")
    datum = {key: raw[key] for key in _DATUM_FIELDS if key in raw}
    datum["Timestamp"] = _timestamp(raw["Timestamp"], where)
    given = list(datum.get("Dimensions", []))
    if not any(d.get("Name") == "Endpoint" for d in given):
        given = dimensions(endpoint) + given
    datum["Dimensions"] = given
    return datum


def read_metric_lines(folder: Path, endpoint: str) -> list[dict[str, Any]]:
    """Every metric line of every file in `folder` (Model Monitor names no file), each with the
    Endpoint dimension added where the line has none; a missing folder has no metrics."""
    data: list[dict[str, Any]] = []
    if not folder.is_dir():
        return data
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                datum = _datum(line, endpoint, f"{path}:{number}")
                if "Value" not in datum or _finite(float(datum["Value"]), f"{path}:{number}"):
                    data.append(datum)
    return data


def _batches(data: Sequence[dict[str, Any]]) -> Iterable[Sequence[dict[str, Any]]]:
    for start in range(0, len(data), MAX_DATA_PER_CALL):
        yield data[start : start + MAX_DATA_PER_CALL]


def put_metrics(cloudwatch: Any, namespace: str, data: Sequence[dict[str, Any]]) -> int:
    """Send the items in as few requests as the API allows; returns how many were sent."""
    for batch in _batches(data):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=list(batch))
    return len(data)
