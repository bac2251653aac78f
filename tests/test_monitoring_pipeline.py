"""The monitoring pipeline: declared once, rendered for SageMaker, and run here by the local runner.

The local run is the real path end to end: a real server (the trained model, data capture on) answers
darkened frames over HTTP, the Monitor step runs the `monitor` entry point over what it captured
against references made by the evaluation's own code, and PublishMonitoring puts the metrics to
CloudWatch, the alert on the bus (moto: its rule delivers to SQS) and the run to MLflow, linked to
the model version it watched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.aws import AwsClients
from pipeline.config import load_config
from pipeline.demo_monitoring import send_frames, wait_for_capture
from pipeline.deploy.local import start_server
from pipeline.monitoring.dag import MONITOR, MONITOR_INPUTS, PUBLISH, build_monitoring_dag
from pipeline.monitoring.declaration import build_monitoring
from pipeline.monitoring.local import (
    References,
    provision_alert_route,
    receive_alerts,
    run_monitoring_locally,
)
from pipeline.monitoring.publish import VIOLATION_COUNT_METRIC
from pipeline.monitoring.templates import monitoring_template
from yolo_core.data.json_io import write_json
from yolo_core.monitoring.constraints import CONSTRAINTS_FILE
from yolo_core.monitoring.reference import monitoring_reference
from yolo_core.monitoring.shifts import darker
from yolo_core.processes import stop_process

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_config("dev")


def test_the_definition_renders_the_declared_steps_and_the_schedule_starts_it():
    from pipeline.monitoring.render import monitoring_definition

    definition = monitoring_definition(CONFIG, "abc123")
    steps = {step["Name"]: step["Arguments"] for step in definition["Steps"]}
    assert list(steps) == [MONITOR, PUBLISH]
    monitor, publish = steps[MONITOR], steps[PUBLISH]
    assert monitor["AppSpecification"]["ContainerEntrypoint"] == ["dumb-init", "--", "monitor"]
    assert [i["InputName"] for i in monitor["ProcessingInputs"]] == list(MONITOR_INPUTS)
    assert publish["AppSpecification"]["ContainerEntrypoint"] == ["dumb-init", "--", "monitor_publish"]
    results = publish["ProcessingInputs"][0]["S3Input"]["S3Uri"]
    assert results == {"Get": f"Steps.{MONITOR}.ProcessingOutputConfig.Outputs['resultdata'].S3Output.S3Uri"}
    # EventBridge Scheduler starts this pipeline, by the name the declaration gives it.
    schedule = monitoring_template(build_monitoring(CONFIG))["Resources"]["MonitoringSchedule"]
    started = json.loads(schedule["Properties"]["Target"]["Input"])["PipelineName"]
    assert started == build_monitoring(CONFIG).pipeline_name
    names = [p["Name"] for p in definition["Parameters"]]
    assert names == [p.name for p in build_monitoring_dag(CONFIG).parameters]


def test_monitor_local_without_a_capture_folder_is_one_line(guarded_subprocess_env, tmp_path):
    command = [sys.executable, "-m", "pipeline", "monitor", "--local", "--moto", "--work-dir", str(tmp_path)]
    done = subprocess.run(
        [*command, "--capture", str(tmp_path / "missing")],
        cwd=ROOT,
        env=guarded_subprocess_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    missing = tmp_path / "missing"
    assert done.stderr.strip().splitlines() == [
        f"error: monitor --local: --capture {missing} is not a folder"
    ]


def _references(model_dir: Path, dataset: Path, folder: Path, version: str) -> References:
    """The references the registry would hold: the model, preprocess's baseline and the
    evaluation's constraints (registered metrics stand-in: the model card's own)."""
    baseline, constraints = folder / "baseline", folder / "constraints"
    baseline.mkdir(parents=True)
    shutil.copy(dataset / "baseline.json", baseline / "baseline.json")
    evaluation = {"metrics": {"map50_95": {"value": 0.5}}, "dataset": {"split": "val"}}
    reference = monitoring_reference(model_dir, dataset, evaluation, 0.25, device="cpu")
    write_json(constraints / CONSTRAINTS_FILE, reference)
    return References(version, model_dir, baseline, constraints)


def _registered_version(tracking_uri: str, name: str, model_dir: Path) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.create_registered_model(name)
    return str(client.create_model_version(name, source=model_dir.as_uri()).version)


@pytest.mark.slow
def test_local_run_alerts_publishes_and_links_the_mlflow_run(
    trained_model_dir, synthetic_dataset, aws_env, mlflow_store, tmp_path
):
    version = _registered_version(mlflow_store, CONFIG.model_package_group, trained_model_dir)
    references = _references(trained_model_dir, synthetic_dataset, tmp_path / "references", version)
    capture = tmp_path / "capture" / "drone-yolo-dev-prod" / "AllTraffic"
    server, url = start_server(trained_model_dir, tmp_path / "server.log", capture_dir=capture)
    try:
        frames = sorted((synthetic_dataset / "images").rglob("*.jpg"))[:30]
        wait_for_capture(capture, send_frames(url, frames, lambda image: darker(image, 0.4)))
    finally:
        stop_process(server, grace_s=30)
    clients = AwsClients(CONFIG.region)
    queue = provision_alert_route(clients, CONFIG)

    run = run_monitoring_locally(
        CONFIG, tmp_path / "work", capture.parent.parent, references, tracking_uri=mlflow_store
    )

    assert run.summary["records"] == 30 and run.summary["violations"] > 0
    violations = json.loads((Path(run.results) / "constraint_violations.json").read_text())["violations"]
    assert "image.brightness" in {v["feature_name"] for v in violations}
    assert (Path(run.results) / "report.html").read_text().count("<img") >= 7
    alerts = receive_alerts(clients, queue)
    assert len(alerts) == 1 and alerts[0]["detail"]["violation_count"] == len(violations)
    metrics = clients.client("cloudwatch").list_metrics(Namespace=build_monitoring(CONFIG).namespace)
    assert VIOLATION_COUNT_METRIC in {m["MetricName"] for m in metrics["Metrics"]}
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_store, registry_uri=mlflow_store)
    tags = client.get_model_version(CONFIG.model_package_group, version).tags
    monitoring_run = client.get_run(tags["monitoring.last_run_id"])
    assert monitoring_run.data.tags["model_version"] == version
    assert int(tags["monitoring.last_violations"]) == len(violations)
    assert monitoring_run.data.metrics["violations"] == len(violations)
    artifacts = {a.path for a in client.list_artifacts(monitoring_run.info.run_id, "monitoring")}
    assert "monitoring/report.html" in artifacts and "monitoring/checks.json" in artifacts


def _registered_references(clients: AwsClients, version: str) -> dict[str, str]:
    """A version's references in its registry prefix, as registry tags name them."""
    tags = {}
    for tag, key, body in (
        ("monitoring.baseline_url", "monitoring/baseline.json", b'{"per_image": []}'),
        ("monitoring.constraints_url", "monitoring/monitoring_constraints.json", b"{}"),
        ("model_data_url", "model.tar.gz", f"model {version}".encode()),
    ):
        clients.s3.put_object(Bucket=CONFIG.bucket, Key=f"registry/v{version}/{key}", Body=body)
        tags[tag] = f"s3://{CONFIG.bucket}/registry/v{version}/{key}"
    return tags


def _monitored_model(clients: AwsClients) -> bytes:
    from pipeline.monitoring.dag import production_references

    bucket, prefix = production_references(CONFIG)["model"].removeprefix("s3://").split("/", 1)
    return clients.s3.get_object(Bucket=bucket, Key=f"{prefix}/model.tar.gz")["Body"].read()


def test_a_promotion_copies_the_versions_references_where_the_schedule_reads_them(aws_env):
    from pipeline.monitoring.dag import production_references
    from pipeline.monitoring.references import publish_production_references, reference_sources
    from yolo_core.errors import UserInputError

    clients = AwsClients(CONFIG.region)
    clients.ensure_bucket(CONFIG.bucket)
    tags = _registered_references(clients, "3")

    copied = publish_production_references(clients.s3, CONFIG, reference_sources(tags))

    for name, uri in copied.items():
        assert uri.startswith(production_references(CONFIG)[name] + "/")
        bucket, key = uri.removeprefix("s3://").split("/", 1)
        assert clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with pytest.raises(UserInputError, match="no constraints URL"):
        reference_sources({**tags, "monitoring.constraints_url": ""})


def test_a_rollback_puts_the_restored_versions_references_back(aws_env, capsys):
    """A rollback reads no registry: the history remembers where each live version's references
    are, so the schedule monitors the version that serves again, not the one rolled back."""
    from types import SimpleNamespace

    from pipeline.deploy.cli import _monitor_live_version
    from pipeline.deploy.history import History

    clients = AwsClients(CONFIG.region)
    clients.ensure_bucket(CONFIG.bucket)
    deployer = SimpleNamespace(
        clients=clients, history=History(CONFIG.s3_uri("deployments", "t"), clients.s3)
    )
    for version in ("3", "4"):
        _monitor_live_version(CONFIG, deployer, version, _registered_references(clients, version))
        assert _monitored_model(clients) == f"model {version}".encode()
    _monitor_live_version(CONFIG, deployer, "3", None)  # rolled back to version 3
    assert _monitored_model(clients) == b"model 3"
    assert (
        "ground-truth"
        in clients.s3.list_objects_v2(Bucket=CONFIG.bucket, Prefix=CONFIG.prefix + "/ground-truth")[
            "Contents"
        ][0]["Key"]
    )
    _monitor_live_version(CONFIG, deployer, "2", None)  # live before the history kept references
    assert "monitoring references not updated: the deployment history has no references of version 2" in (
        capsys.readouterr().err
    )


def test_going_live_seeds_the_empty_ground_truth_prefix_the_schedule_reads(aws_env):
    """SageMaker fails a Processing input on an empty S3 prefix: the ground-truth input gets a README
    (no .jsonl: no quality checks) while no labels are there, and nothing once labels are."""
    from pipeline.monitoring.dag import ground_truth_prefix
    from pipeline.monitoring.declaration import build_monitoring
    from pipeline.monitoring.references import GROUND_TRUTH_README, seed_ground_truth_prefix

    clients = AwsClients(CONFIG.region)
    clients.ensure_bucket(CONFIG.bucket)
    bucket, prefix = ground_truth_prefix(CONFIG, build_monitoring(CONFIG)).removeprefix("s3://").split("/", 1)
    assert seed_ground_truth_prefix(clients.s3, CONFIG) == f"s3://{bucket}/{prefix}/{GROUND_TRUTH_README}"
    keys = [o["Key"] for o in clients.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    assert keys == [f"{prefix}/{GROUND_TRUTH_README}"]

    clients.s3.delete_object(Bucket=bucket, Key=keys[0])
    clients.s3.put_object(Bucket=bucket, Key=f"{prefix}/2026/12/06/labels.jsonl", Body=b"{}\n")
    seed_ground_truth_prefix(clients.s3, CONFIG)
    keys = [o["Key"] for o in clients.s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    assert keys == [f"{prefix}/2026/12/06/labels.jsonl"]
