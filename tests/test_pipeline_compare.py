"""`python -m pipeline compare`: two versions registered in a temporary MLflow store (and moto's
SageMaker registry), shown side by side with their metrics, data, code and hyperparameters."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.__main__ import main
from pipeline.aws import AwsClients
from pipeline.compare import hyperparameters_of
from pipeline.config import load_config
from pipeline.registry import ModelRegistry, Provenance
from pipeline.tracking import PipelineTracking, default_tracking_uri
from yolo_core.hyperparams import Hyperparameters

VERSIONS = {
    "1": {"metrics": {"map50": 0.52, "map50_95": 0.30}, "hp": {"lr0": 0.01, "optimizer": "SGD"}, "data": "a"},
    "2": {
        "metrics": {"map50": 0.61, "map50_95": 0.34},
        "hp": {"lr0": 0.002, "optimizer": "AdamW"},
        "data": "b",
    },
}


def _model_dir(folder: Path, hyperparameters: dict, weights: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / "best.pt").write_bytes(weights)
    card = {
        "class_names": ["car", "bus"],
        "imgsz": 320,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "hyperparameters": Hyperparameters(**hyperparameters).to_dict(),
    }
    (folder / "model.json").write_text(json.dumps(card))
    return folder


@pytest.fixture
def registered(aws_env, tmp_path: Path) -> tuple[Path, ModelRegistry]:
    work = tmp_path / "work"
    config = load_config("dev")
    aws = AwsClients(config.region)
    aws.ensure_bucket(config.bucket)
    tracking_uri = default_tracking_uri(work)
    registry = ModelRegistry(config, tracking_uri, aws, work / "registry-audit.jsonl")
    tracking = PipelineTracking(tracking_uri, "compare-test", work / "mlflow-artifacts")
    for version, spec in VERSIONS.items():
        parent = tracking.start(f"pipeline-{version}", {}, {})
        model_dir = _model_dir(tmp_path / f"model{version}", spec["hp"], f"weights {version}".encode())
        evaluation = tmp_path / f"evaluation{version}.json"
        evaluation.write_text(json.dumps({"metrics": {k: {"value": v} for k, v in spec["metrics"].items()}}))
        provenance = Provenance(
            dataset_hash=spec["data"] * 64,
            input_data_uri=f"s3://raw/{version}",
            dataset_location="/store/dataset",
            code_commit=f"c0ffee{version}" * 4,
            images={"inference": "registry/inference:1"},
            pipeline_run_id=parent,
        )
        model = registry.register(model_dir, evaluation, tracking.child("RegisterModel", {}, {}), provenance)
        assert model.version == version
    registry.approve("2", "better on the holdout", "tester")
    return work, registry


def _compare(work: Path, *extra: str) -> None:
    with pytest.raises(SystemExit) as done:
        main(["compare", "--env", "dev", "--work-dir", str(work), *extra])
    assert done.value.code == 0


def test_compare_shows_registered_versions_side_by_side(registered, capsys: pytest.CaptureFixture) -> None:
    work, _ = registered
    _compare(work)
    out = capsys.readouterr().out
    lines = {line.split("  ")[0]: line.split() for line in out.splitlines() if "  " in line}
    assert lines["version"][1:] == ["1", "2"]
    assert lines["approval (MLflow)"][2:] == ["PendingManualApproval", "Approved"]
    assert lines["approval (SageMaker)"][2:] == ["PendingManualApproval", "Approved"]
    assert lines["metric map50_95"][2:] == ["0.3000", "0.3400", "*"]  # the best is starred
    assert lines["dataset_hash"][1:] == ["a" * 12, "b" * 12]
    assert lines["code_commit"][1:] == ["c0ffee1c0ffe", "c0ffee2c0ffe"]
    assert lines["hp lr0"][2:] == ["0.01", "0.002"] and lines["hp optimizer"][2:] == ["SGD", "AdamW"]
    assert "hp epochs" not in lines and "hyperparameters are the same in every version" in out


def test_compare_as_json_and_for_chosen_versions(registered, capsys: pytest.CaptureFixture) -> None:
    work, _ = registered
    _compare(work, "--versions", "2", "--json", "--all-hyperparameters")
    (only,) = json.loads(capsys.readouterr().out)
    assert only["version"] == "2" and only["approval"]["sagemaker"] == "Approved"
    assert only["hyperparameters"]["lr0"] == "0.002" and only["hyperparameters"]["epochs"] == "100"
    assert only["metrics"]["map50"] == pytest.approx(0.61)
    assert only["hyperparameters_from"].startswith("MLflow run ")


def test_without_the_mlflow_card_the_package_archive_is_read(registered) -> None:
    """A version the SageMaker pipeline registered has its card only in the package's model.tar.gz."""
    _, registry = registered
    lineage = registry.lineage("1")
    hyperparameters, source = hyperparameters_of(
        registry, {**lineage, "pipeline": {**lineage["pipeline"], "mlflow_register_run_id": ""}}
    )
    assert source == lineage["artifacts"]["model_data_url"] and source.endswith("model.tar.gz")
    assert hyperparameters["lr0"] == "0.01"


def test_compare_with_no_versions_says_so(aws_env, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as done:
        main(["compare", "--env", "dev", "--work-dir", str(tmp_path)])
    assert done.value.code == 1
    assert "has no registered versions" in capsys.readouterr().err
