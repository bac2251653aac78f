"""Monitoring alerts against a real moto server (5.2.5): the bus, the rule and the queue are made
from the rendered template's own names and pattern, a run with violations puts one event that the
rule delivers to SQS, every run puts its metrics to CloudWatch, and a refused event is one line.

moto's gaps, where they bite: PutEvents to a missing bus answers ResourceNotFoundException for the
whole call (AWS may instead drop the entry and count it in `FailedEntryCount`, played here with
botocore's Stubber, which checks the answer against the service model); Scheduler is CRUD only, so
the schedule is created from the template's properties (botocore validates them) but never fires.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber

from entrypoints.contract import run_main
from pipeline.aws import AwsClients
from pipeline.config import load_config
from pipeline.monitoring.alerts import (
    AlertNotDelivered,
    MonitoringRun,
    alert_entry,
    parse_violations,
    put_alert,
)
from pipeline.monitoring.declaration import ALERT_DETAIL_TYPE, ALERT_SOURCE, build_monitoring
from pipeline.monitoring.metrics import read_metric_lines
from pipeline.monitoring.publish import VIOLATION_COUNT_METRIC, VIOLATIONS_FILE, publish_outputs, publish_run
from pipeline.monitoring.templates import monitoring_template
from yolo_core.errors import UserInputError

CONFIG = load_config("dev")
MONITORING = build_monitoring(CONFIG)
TEMPLATE = monitoring_template(MONITORING)["Resources"]
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
RUN = MonitoringRun(
    endpoint=MONITORING.endpoint,
    run_id="monitoring-run-1",
    start=END - timedelta(hours=1),
    end=END,
    report_uri=CONFIG.s3_uri("monitoring", "monitoring-run-1", "report.html"),
)
METRICS = {"brightness": {"psi": 0.31, "p_value": 0.002}, "confidence": {"ks_statistic": 0.12}}
VIOLATIONS = {
    "violations": [
        {
            "feature_name": "brightness",
            "constraint_check_type": "baseline_drift_check",
            "description": "PSI 0.31",
        },
        {
            "feature_name": "class_mix",
            "constraint_check_type": "baseline_drift_check",
            "description": "chi2 p=0",
        },
    ]
}


@pytest.fixture
def alerting(aws_env) -> tuple[AwsClients, str]:
    """The template's bus, rule (its pattern) and queue, on moto; returns the clients and queue URL."""
    clients = AwsClients(CONFIG.region)
    events, sqs = clients.client("events"), clients.client("sqs")
    bus = TEMPLATE["AlertBus"]["Properties"]["Name"]
    rule = TEMPLATE["ViolationsRule"]["Properties"]
    queue = sqs.create_queue(QueueName=TEMPLATE["AlertQueue"]["Properties"]["QueueName"])["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.create_event_bus(Name=bus)
    events.put_rule(Name=rule["Name"], EventBusName=bus, EventPattern=json.dumps(rule["EventPattern"]))
    events.put_targets(Rule=rule["Name"], EventBusName=bus, Targets=[{"Id": "alert-queue", "Arn": queue_arn}])
    return clients, queue


def received(sqs: Any, queue: str) -> list[dict[str, Any]]:
    answer = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(message["Body"]) for message in answer.get("Messages", [])]


def series(cloudwatch: Any) -> dict[str, set[tuple[tuple[str, str], ...]]]:
    """Metric name -> the dimension sets it was put with, as CloudWatch lists them."""
    found: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for metric in cloudwatch.list_metrics(Namespace=MONITORING.namespace)["Metrics"]:
        dims = tuple(sorted((d["Name"], d["Value"]) for d in metric["Dimensions"]))
        found.setdefault(metric["MetricName"], set()).add(dims)
    return found


def stored_value(cloudwatch: Any, name: str, dims: list[dict[str, str]]) -> list[float]:
    query = {"Namespace": MONITORING.namespace, "MetricName": name, "Dimensions": dims}
    answer = cloudwatch.get_metric_data(
        MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": query, "Period": 60, "Stat": "Maximum"}}],
        StartTime=RUN.start,
        EndTime=RUN.end + timedelta(minutes=1),
    )
    return answer["MetricDataResults"][0]["Values"]


def feature(name: str) -> tuple[tuple[str, str], ...]:
    return (("Endpoint", RUN.endpoint), ("Feature", name))


def test_violations_reach_the_queue_and_metrics_reach_cloudwatch(alerting) -> None:
    clients, queue = alerting
    published = publish_run(clients, MONITORING, RUN, METRICS, parse_violations(VIOLATIONS, "test"))
    assert published.event_id and published.metrics == 4
    other = {**alert_entry(MONITORING.bus_name, RUN, []), "DetailType": "Model Monitoring Heartbeat"}
    put_alert(clients.client("events"), other)  # on the bus, but not what the rule matches

    (event,) = received(clients.client("sqs"), queue)
    assert (event["source"], event["detail-type"]) == (ALERT_SOURCE, ALERT_DETAIL_TYPE)
    detail = event["detail"]
    assert detail["endpoint"] == "drone-yolo-dev-prod"
    assert detail["features"] == ["brightness", "class_mix"]
    assert [v["feature_name"] for v in detail["violations"]] == ["brightness", "class_mix"]
    assert detail["window"] == {"start": RUN.start.isoformat(), "end": RUN.end.isoformat()}
    assert (detail["run_id"], detail["report"]) == (RUN.run_id, RUN.report_uri)

    cloudwatch = clients.client("cloudwatch")
    assert series(cloudwatch) == {
        "psi": {feature("brightness")},
        "p_value": {feature("brightness")},
        "ks_statistic": {feature("confidence")},
        VIOLATION_COUNT_METRIC: {(("Endpoint", RUN.endpoint),)},
    }
    dims = [{"Name": "Endpoint", "Value": RUN.endpoint}, {"Name": "Feature", "Value": "brightness"}]
    assert stored_value(cloudwatch, "psi", dims) == [0.31]
    assert stored_value(cloudwatch, VIOLATION_COUNT_METRIC, dims[:1]) == [2.0]


def test_a_quiet_run_puts_metrics_and_no_event(alerting) -> None:
    clients, queue = alerting
    published = publish_run(clients, MONITORING, RUN, METRICS, parse_violations({"violations": []}, "test"))
    assert published.event_id is None
    assert received(clients.client("sqs"), queue) == []
    cloudwatch = clients.client("cloudwatch")
    assert set(series(cloudwatch)) == {"psi", "p_value", "ks_statistic", VIOLATION_COUNT_METRIC}
    endpoint_only = [{"Name": "Endpoint", "Value": RUN.endpoint}]
    assert stored_value(cloudwatch, VIOLATION_COUNT_METRIC, endpoint_only) == [0.0]


def test_model_monitor_outputs_are_published(alerting, tmp_path: Path) -> None:
    """What a run under the Model Monitor contract leaves: the violations file and metric lines."""
    clients, queue = alerting
    output, metrics_dir = tmp_path / "resultdata", tmp_path / "metrics" / "cloudwatch"
    output.mkdir()
    metrics_dir.mkdir(parents=True)
    (output / VIOLATIONS_FILE).write_text(json.dumps(VIOLATIONS))
    line = {
        "MetricName": "feature_baseline_drift_sharpness",
        "Timestamp": RUN.end.isoformat().replace("+00:00", "Z"),
        "Dimensions": [{"Name": "MonitoringSchedule", "Value": MONITORING.schedule_name}],
        "Value": 0.4,
    }
    (metrics_dir / "metrics.jsonl").write_text(json.dumps(line) + "\n\n")
    published = publish_outputs(clients, MONITORING, RUN, output, metrics_dir)
    assert published.metrics == 2 and published.event_id
    assert [event["detail"]["features"] for event in received(clients.client("sqs"), queue)] == [
        ["brightness", "class_mix"]
    ]
    schedule = (("Endpoint", RUN.endpoint), ("MonitoringSchedule", MONITORING.schedule_name))
    assert series(clients.client("cloudwatch"))["feature_baseline_drift_sharpness"] == {schedule}


def test_a_refused_event_is_one_line_naming_the_bus(aws_env, capsys) -> None:
    clients = AwsClients(CONFIG.region)
    missing = replace(MONITORING, bus_name="nobody-monitoring")  # never created
    with pytest.raises(SystemExit) as exit_:
        run_main(lambda: publish_run(clients, missing, RUN, METRICS, parse_violations(VIOLATIONS, "test")))
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert missing.bus_name in err and "ResourceNotFoundException" in err


def test_a_dropped_entry_is_an_error_naming_the_bus(aws_env) -> None:
    """PutEvents answers 200 and counts the entry it dropped; that must not pass for delivered."""
    events = AwsClients(CONFIG.region).client("events")
    entry = alert_entry(MONITORING.bus_name, RUN, parse_violations(VIOLATIONS, "test"))
    dropped = {
        "FailedEntryCount": 1,
        "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try later"}],
    }
    with Stubber(events) as stub:
        stub.add_response("put_events", dropped, {"Entries": [entry]})
        with pytest.raises(AlertNotDelivered, match=f"bus {MONITORING.bus_name} refused .*InternalFailure"):
            put_alert(events, entry)


def test_the_schedule_from_the_template_is_accepted(aws_env) -> None:
    """Scheduler on moto is CRUD only: botocore checks the template's target against the API."""
    scheduler = AwsClients(CONFIG.region).client("scheduler")
    props = TEMPLATE["MonitoringSchedule"]["Properties"]
    role = "arn:aws:iam::123456789012:role/drone-yolo-dev-monitoring-scheduler"
    scheduler.create_schedule(
        Name=props["Name"],
        ScheduleExpression=MONITORING.schedule_expression,
        FlexibleTimeWindow=props["FlexibleTimeWindow"],
        Target={**props["Target"], "RoleArn": role},
    )
    target = scheduler.get_schedule(Name=props["Name"])["Target"]
    assert json.loads(target["Input"])["PipelineName"] == MONITORING.pipeline_name


def test_bad_documents_name_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"violations\[0\]: a violation needs"):
        parse_violations({"violations": [{"feature_name": "brightness"}]}, "constraint_violations.json")
    lines = tmp_path / "cloudwatch"
    lines.mkdir()
    (lines / "metrics.jsonl").write_text('{"MetricName": "psi", "Timestamp": "yesterday"}\n')
    with pytest.raises(UserInputError, match=r"metrics.jsonl:1: Timestamp 'yesterday'"):
        read_metric_lines(lines, RUN.endpoint)
