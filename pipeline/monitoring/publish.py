"""The end of a monitoring run: every run puts its metrics to CloudWatch (so a quiet run is visible as
a quiet run), and a run with at least one violation puts one alert on the bus."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.aws import AwsClients
from pipeline.monitoring.alerts import MonitoringRun, alert_entry, put_alert, read_violations
from pipeline.monitoring.declaration import Monitoring
from pipeline.monitoring.metrics import dimensions, metric_data, put_metrics, read_metric_lines

VIOLATIONS_FILE = "constraint_violations.json"  # Model Monitor's name, under its output_path
VIOLATION_COUNT_METRIC = "ViolationCount"  # per endpoint, for one alarm over all features


@dataclass(frozen=True)
class Published:
    metrics: int  # items put to CloudWatch
    event_id: str | None  # the alert's id, None when the run found nothing


def publish_run(
    clients: AwsClients,
    monitoring: Monitoring,
    run: MonitoringRun,
    metrics: Mapping[str, Mapping[str, float]],
    violations: list[dict[str, str]],
    metric_lines: Sequence[dict[str, Any]] = (),
) -> Published:
    """Put the run's metrics (feature -> {statistic: value}, plus any Model Monitor metric lines)
    and, if there are violations, its one alert."""
    count = {
        "MetricName": VIOLATION_COUNT_METRIC,
        "Timestamp": run.end,
        "Value": float(len(violations)),
        "Dimensions": dimensions(run.endpoint),
    }
    data = [*metric_data(run.endpoint, metrics, run.end), *metric_lines, count]
    sent = put_metrics(clients.client("cloudwatch"), monitoring.namespace, data)
    if not violations:
        return Published(sent, None)
    event_id = put_alert(clients.client("events"), alert_entry(monitoring.bus_name, run, violations))
    return Published(sent, event_id)


def publish_outputs(
    clients: AwsClients, monitoring: Monitoring, run: MonitoringRun, output_path: Path, metrics_dir: Path
) -> Published:
    """Publish what a run under the Model Monitor contract left: `constraint_violations.json` in
    its output_path and the metric lines in its CloudWatch metrics folder."""
    violations = read_violations(output_path / VIOLATIONS_FILE)
    lines = read_metric_lines(metrics_dir, run.endpoint)
    return publish_run(clients, monitoring, run, {}, violations, lines)
