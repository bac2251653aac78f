"""The model registry keeps an MLflow model version and a SageMaker model package in step."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from pipeline.aws import AwsClients
from pipeline.config import load_config
from pipeline.registry import APPROVED, APPROVED_ALIAS, PENDING, REJECTED, ModelRegistry, Provenance
from pipeline.tracking import PipelineTracking
from yolo_core.errors import UserInputError

METRICS = {"map50": 0.61, "map50_95": 0.33, "precision": 0.7, "recall": 0.55}
WEIGHTS_SHA256 = hashlib.sha256(b"weights").hexdigest()


@pytest.fixture(scope="module")
def shared_mlflow(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for the module (creating one costs seconds); each test gets its own model name."""
    return f"sqlite:///{tmp_path_factory.mktemp('registry-mlflow') / 'mlflow.db'}"


@pytest.fixture
def registry_setup(aws_env, shared_mlflow: str, tmp_path: Path, request: pytest.FixtureRequest):
    mlflow_store = shared_mlflow
    group = "drone-" + request.node.name.removeprefix("test_").replace("_", "-")[:40]
    config = load_config("dev").model_copy(update={"model_package_group": group})
    aws = AwsClients(config.region)
    aws.ensure_bucket(config.bucket)
    tracking = PipelineTracking(mlflow_store, "registry-test", tmp_path / "mlflow-artifacts")
    parent = tracking.start("pipeline", {}, {})
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "best.pt").write_bytes(b"weights")
    card = {"class_names": ["car"], "imgsz": 320, "weights_sha256": WEIGHTS_SHA256}
    (model_dir / "model.json").write_text(json.dumps(card))
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps({"metrics": {k: {"value": v} for k, v in METRICS.items()}}))
    provenance = Provenance(
        dataset_hash="d" * 64,
        input_data_uri="s3://raw/frames",
        dataset_location="/store/Preprocess/k/dataset",
        code_commit="c0ffee",
        images={"inference": "registry/inference:1", "train": "registry/train:1"},
        pipeline_run_id=parent,
    )
    registry = ModelRegistry(config, mlflow_store, aws, tmp_path / "audit.jsonl")
    return registry, tracking, model_dir, evaluation, provenance, aws


def _register(registry_setup):
    registry, tracking, model_dir, evaluation, provenance, _ = registry_setup
    return registry.register(model_dir, evaluation, tracking.child("RegisterModel", {}, {}), provenance)


def test_register_writes_both_sides_pending(registry_setup) -> None:
    registry, *_, aws = registry_setup
    model = _register(registry_setup)
    assert model.status == PENDING and model.version == "1"
    version = registry.mlflow.get_model_version(registry.name, "1")
    assert version.tags["approval_status"] == PENDING
    assert version.tags["sagemaker_model_package_arn"] == model.model_package_arn
    assert float(version.tags["metric.map50_95"]) == pytest.approx(METRICS["map50_95"])
    package = aws.sagemaker.describe_model_package(ModelPackageName=model.model_package_arn)
    assert package["ModelApprovalStatus"] == PENDING
    assert package["ModelPackageGroupName"] == registry.name
    assert package["CustomerMetadataProperties"]["mlflow_model_version"] == "1"
    assert version.tags["weights_sha256"] == WEIGHTS_SHA256
    assert package["CustomerMetadataProperties"]["weights_sha256"] == WEIGHTS_SHA256
    assert package["InferenceSpecification"]["Containers"][0]["Image"] == "registry/inference:1"
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    bucket, key = statistics.removeprefix("s3://").split("/", 1)
    attached = json.loads(aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert attached["metrics"]["recall"]["value"] == METRICS["recall"]
    bucket, key = model.model_data_url.removeprefix("s3://").split("/", 1)
    with tarfile.open(
        fileobj=io.BytesIO(aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    ) as archive:
        assert sorted(archive.getnames()) == ["best.pt", "model.json"]  # SageMaker's model.tar.gz layout


def test_approve_and_reject_change_both_and_are_audited(registry_setup) -> None:
    registry, *_, aws = registry_setup
    model = _register(registry_setup)
    approved = registry.approve("latest", "beats the baseline on the night set", who="alice")
    assert approved.status == APPROVED
    assert (
        aws.sagemaker.describe_model_package(ModelPackageName=model.model_package_arn)["ModelApprovalStatus"]
        == APPROVED
    )
    assert str(registry.mlflow.get_model_version_by_alias(registry.name, APPROVED_ALIAS).version) == "1"

    registry.reject("1", "false positives on shadows", who="bob")
    package = aws.sagemaker.describe_model_package(ModelPackageName=model.model_package_arn)
    assert package["ModelApprovalStatus"] == REJECTED
    assert package["CustomerMetadataProperties"]["code_commit"] == "c0ffee"  # metadata survives updates
    assert registry.mlflow.get_model_version(registry.name, "1").tags["approval_status"] == REJECTED
    with pytest.raises(Exception, match="alias"):
        registry.mlflow.get_model_version_by_alias(registry.name, APPROVED_ALIAS)

    entries = registry.audit_entries("1")
    assert [(e["who"], e["action"], e["previous"]) for e in entries] == [
        ("alice", APPROVED, PENDING),
        ("bob", REJECTED, APPROVED),
    ]
    assert entries[1]["reason"] == "false positives on shadows" and entries[1]["time"]


def test_lineage_shows_data_code_images_and_run(registry_setup) -> None:
    registry, _, _, _, provenance, _ = registry_setup
    _register(registry_setup)
    registry.approve("1", "ok", who="carol")
    lineage = registry.lineage("1")
    assert lineage["approval"] == {"mlflow": APPROVED, "sagemaker": APPROVED, "in_step": True}
    assert lineage["data"]["dataset_hash"] == provenance.dataset_hash
    assert lineage["data"]["input_data_uri"] == "s3://raw/frames"
    assert lineage["code_commit"] == "c0ffee"
    assert lineage["artifacts"]["weights_sha256"] == WEIGHTS_SHA256
    assert lineage["images"] == provenance.images
    assert lineage["pipeline"]["mlflow_pipeline_run_id"] == provenance.pipeline_run_id
    assert lineage["metrics"]["precision"] == pytest.approx(0.7)
    assert [e["who"] for e in lineage["audit"]] == ["carol"]


def test_weights_that_differ_from_their_card_are_not_registered(registry_setup) -> None:
    registry, _, model_dir, *_ = registry_setup
    (model_dir / "best.pt").write_bytes(b"weightz")
    with pytest.raises(UserInputError, match=f"expects {WEIGHTS_SHA256}"):
        _register(registry_setup)
    assert registry.mlflow.search_model_versions(f"name='{registry.name}'") == []


def test_decisions_need_a_reason_and_a_known_version(registry_setup) -> None:
    registry, *_ = registry_setup
    _register(registry_setup)
    with pytest.raises(UserInputError, match="give a reason"):
        registry.approve("1", "  ")
    with pytest.raises(UserInputError, match="has no version '7'"):
        registry.approve("7", "why not")
    assert registry.audit_entries() == []


def test_an_approval_that_fails_in_mlflow_restores_the_sagemaker_package(registry_setup, monkeypatch) -> None:
    """Both sides or neither: SageMaker is updated first, so a tracking failure must undo it."""
    registry, *_, aws = registry_setup
    model = _register(registry_setup)

    def tracking_store_down(*args, **kwargs):
        raise ConnectionError("tracking server went away")

    monkeypatch.setattr(registry.mlflow, "set_registered_model_alias", tracking_store_down)
    with pytest.raises(ConnectionError):
        registry.approve("1", "looks good", who="alice")
    package = aws.sagemaker.describe_model_package(ModelPackageName=model.model_package_arn)
    assert package["ModelApprovalStatus"] == PENDING
    assert registry.mlflow.get_model_version(registry.name, "1").tags["approval_status"] == PENDING
    assert registry.audit_entries("1") == []  # nothing was decided, so nothing is audited
