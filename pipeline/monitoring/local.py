"""`python -m pipeline monitor --local`: the monitoring pipeline's DAG on this machine.

The same two steps as in SageMaker (`pipeline.monitoring.dag`), run by the model-build pipeline's
local runner: Monitor as a subprocess over the captured folder against the version's references
(MLflow artifacts of its registration: the model, baseline.json and monitoring_constraints.json),
then PublishMonitoring on the host, where MLflow and the AWS endpoint (moto, locally) are. The bus,
the rule and the queue the alert travels through are made here from the CloudFormation template's
own resources, as the stack would make them.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from entrypoints.monitor import RESULTS_OUTPUT
from pipeline.aws import AwsClients
from pipeline.config import EnvConfig
from pipeline.monitoring.dag import MONITOR, PUBLISH, build_monitoring_dag
from pipeline.monitoring.declaration import build_monitoring
from pipeline.monitoring.templates import monitoring_template
from pipeline.registry import MONITORING_ARTIFACTS, ModelRegistry
from yolo_core.errors import UserInputError
from yolo_core.monitoring.run import RUN_FILE


@dataclass(frozen=True)
class References:
    """The local folders of a version's references, one per DAG input."""

    version: str
    model: Path
    baseline: Path
    constraints: Path


@dataclass(frozen=True)
class LocalMonitoringRun:
    results: str  # where the Monitor step's output went
    summary: dict[str, Any]  # its run.json
    publish_log: str


def registered_references(registry: ModelRegistry, version: str, target: Path) -> References:
    """Download an approved version's model and monitoring references from its MLflow run."""
    from pipeline.tracking import download_registered

    model_version = registry.approved_version(version, in_sagemaker=False)
    number = str(model_version.version)
    folder = target / f"v{number}"
    source = model_version.source  # <run artifacts>/model
    root = source.rsplit("/", 1)[0]
    if not (folder / "model" / "model.json").is_file():
        download_registered(source, folder)
    monitoring = folder / MONITORING_ARTIFACTS
    if not monitoring.is_dir():
        try:
            download_registered(f"{root}/{MONITORING_ARTIFACTS}", folder)
        except Exception as exc:  # MLflow raises its own, OSError or a store error per backend
            raise UserInputError(
                f"model version {number} has no monitoring references (registered before the "
                f"evaluation wrote monitoring_constraints.json?): {exc}"
            ) from None
    references = _split(monitoring, target / f"v{number}-inputs")
    return References(number, folder / "model", *references)


def _split(monitoring: Path, target: Path) -> tuple[Path, Path]:
    """One folder per DAG input (baseline/, constraints/), as the Processing job mounts them."""
    from yolo_core.data.dataset import BASELINE_FILE
    from yolo_core.monitoring.constraints import CONSTRAINTS_FILE

    folders = []
    for name, file in (("baseline", BASELINE_FILE), ("constraints", CONSTRAINTS_FILE)):
        folder = target / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / file).write_bytes((monitoring / file).read_bytes())
        folders.append(folder)
    return folders[0], folders[1]


def provision_alert_route(clients: AwsClients, config: EnvConfig) -> str:
    """The template's bus, violations rule and queue (with the rule's target); the queue's URL."""
    resources = monitoring_template(build_monitoring(config))["Resources"]
    events, sqs = clients.client("events"), clients.client("sqs")
    queue = sqs.create_queue(QueueName=resources["AlertQueue"]["Properties"]["QueueName"])["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = resources["AlertBus"]["Properties"]["Name"]
    if not any(b["Name"] == bus for b in events.list_event_buses(NamePrefix=bus)["EventBuses"]):
        events.create_event_bus(Name=bus)
    rule = resources["ViolationsRule"]["Properties"]
    events.put_rule(Name=rule["Name"], EventBusName=bus, EventPattern=json.dumps(rule["EventPattern"]))
    events.put_targets(Rule=rule["Name"], EventBusName=bus, Targets=[{"Id": "alert-queue", "Arn": arn}])
    return queue


def receive_alerts(clients: AwsClients, queue_url: str, wait_s: int = 5) -> list[dict[str, Any]]:
    """The alerts waiting in the queue (their EventBridge events), removed from it."""
    sqs = clients.client("sqs")
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s)
    events = []
    for message in messages.get("Messages", []):
        events.append(json.loads(message["Body"]))
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return events


def run_monitoring_locally(
    config: EnvConfig,
    work_dir: Path,
    capture: Path,
    references: References,
    ground_truth: Path | None = None,
    window_hours: int = 0,
    tracking_uri: str = "",
    emit: Callable[[str], None] = print,
) -> LocalMonitoringRun:
    """Both steps of the monitoring DAG; raises StepFailed with the step's one-line reason."""
    from pipeline.local_runner import LocalRunner, LocalRunSettings

    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="no-ground-truth-", dir=work_dir) as empty:
        parameters = {
            "CaptureUri": str(capture),
            "BaselineUri": str(references.baseline),
            "ConstraintsUri": str(references.constraints),
            "ModelUri": str(references.model),
            "GroundTruthUri": str(ground_truth or empty),
            "WindowHours": window_hours,
            "ModelVersion": references.version,
        }
        settings = LocalRunSettings(
            config=config, work_dir=work_dir, parameters=parameters, tracking_uri=tracking_uri, emit=emit
        )
        dag = build_monitoring_dag(config)
        runner = LocalRunner(settings, dag=dag)
        runner.tracking.start(f"{dag.step(MONITOR).name} (local)", parameters, {"kind": "monitoring"})
        monitor = runner.run_job(dag.step(MONITOR))
        publish = runner.run_job(dag.step(PUBLISH))
        runner.tracking.finish(runner.tracking.parent_run_id)
    results = monitor.outputs[RESULTS_OUTPUT]
    summary = json.loads((Path(results) / RUN_FILE).read_text())
    return LocalMonitoringRun(results, summary, publish.log_file)
