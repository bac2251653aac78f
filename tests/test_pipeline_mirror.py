"""A model package registered by the SageMaker pipeline gets its MLflow version (the MlflowMirror
step), after which `approve`, `reject` and `lineage` work for it by package ARN, by `sagemaker:N`
and by MLflow version number.

The package is created from the golden definition's own RegisterModel request (its expressions
resolved as SageMaker resolves them in an execution), and the mirror runs as the container command
with the MlflowMirror step's own rendered arguments, against moto and a real MLflow sqlite store.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pipeline import dag as d
from pipeline.aws import AwsClients
from pipeline.config import load_config
from pipeline.registry import APPROVED, PENDING, REJECTED, ModelRegistry
from yolo_core.errors import UserInputError

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "pipeline_dev.json"
WEIGHTS = b"trained weights"
METRICS = {"map50": 0.61, "map50_95": 0.33, "precision": 0.7, "recall": 0.55}
EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/drone-yolo-dev/execution/abc123"


def _steps(definition: dict) -> dict[str, dict]:
    found, stack = {}, list(definition["Steps"])
    while stack:
        step = stack.pop()
        found[step["Name"]] = step
        arguments = step.get("Arguments", {})
        stack.extend(arguments.get("IfSteps", []) + arguments.get("ElseSteps", []))
    return found


def _resolve(value: Any, known: dict[str, str]) -> Any:
    """A definition's expression with every `Get` and `Std:Join` evaluated, as in an execution."""
    if isinstance(value, list):
        return [_resolve(item, known) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Get"}:
        return known[value["Get"]]
    if set(value) == {"Std:Join"}:
        join = value["Std:Join"]
        return join["On"].join(str(_resolve(part, known)) for part in join["Values"])
    return {key: _resolve(item, known) for key, item in value.items()}


@pytest.fixture
def registered(aws_env, mlflow_store: str, tmp_path: Path) -> dict[str, Any]:
    """A package made by RegisterModel's rendered request, its artifacts where the jobs put them."""
    config = load_config("dev")
    definition = json.loads(GOLDEN.read_text())
    aws = AwsClients(config.region)
    aws.ensure_bucket(config.bucket)
    prefix = config.s3_uri("executions", "abc123")
    known = {f"Parameters.{p['Name']}": p["DefaultValue"] for p in definition["Parameters"]}
    known["Parameters.MlflowTrackingUri"] = mlflow_store  # the environment's MLflow, here a real store
    known |= {
        "Execution.PipelineExecutionArn": EXECUTION,
        "Steps.Train.ModelArtifacts.S3ModelArtifacts": f"{prefix}/Train/output/model.tar.gz",
        "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri": f"{prefix}/evaluation",
        "Steps.Preprocess.ProcessingOutputConfig.Outputs['dataset'].S3Output.S3Uri": f"{prefix}/dataset",
    }
    card = {
        "class_names": ["car"],
        "imgsz": 320,
        "dataset_hash": "d" * 64,
        "weights_sha256": hashlib.sha256(WEIGHTS).hexdigest(),
    }
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in (("best.pt", WEIGHTS), ("model.json", json.dumps(card).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    evaluation = {"metrics": {k: {"value": v} for k, v in METRICS.items()}}
    bucket, key = known["Steps.Train.ModelArtifacts.S3ModelArtifacts"].removeprefix("s3://").split("/", 1)
    aws.s3.put_object(Bucket=bucket, Key=key, Body=archive.getvalue())
    aws.s3.put_object(
        Bucket=bucket,
        Key=f"{key.split('/Train/')[0]}/evaluation/evaluation.json",
        Body=json.dumps(evaluation),
    )

    request = _resolve(_steps(definition)[d.REGISTER]["Arguments"], known)
    # The SDK renders fields SageMaker fills in itself; botocore's model rejects them as input.
    request.pop("SkipModelValidation", None)
    request["ModelMetrics"] = {k: v for k, v in request["ModelMetrics"].items() if v}
    aws.sagemaker.create_model_package_group(ModelPackageGroupName=request["ModelPackageGroupName"])
    arn = aws.sagemaker.create_model_package(**request)["ModelPackageArn"]
    known["Steps.RegisterModel.ModelPackageArn"] = arn

    base = tmp_path / "opt-ml"
    (base / "processing" / "input" / "model").mkdir(parents=True)
    (base / "processing" / "input" / "model" / "model.tar.gz").write_bytes(archive.getvalue())
    (base / "processing" / "input" / "evaluation").mkdir(parents=True)
    (base / "processing" / "input" / "evaluation" / "evaluation.json").write_text(json.dumps(evaluation))
    mirror = _steps(definition)[d.MLFLOW_MIRROR]["Arguments"]["AppSpecification"]
    registry = ModelRegistry(config, mlflow_store, aws, tmp_path / "audit.jsonl")
    return {
        "arn": arn,
        "base": base,
        "command": [str(part) for part in _resolve(mirror["ContainerArguments"], known)],
        "registry": registry,
        "aws": aws,
    }


def _run_mirror(registered: dict, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`register_mirror ARGS` as the Processing job runs it, the /opt/ml tree moved to a folder."""
    command = [sys.executable, "-m", "entrypoints.register_mirror", *registered["command"]]
    env = {**env, "SAGEMAKER_BASE_DIR": str(registered["base"]), "GIT_COMMIT": "c0ffee"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_package_the_sagemaker_step_registered_is_mirrored_approved_and_traced(
    registered: dict, aws_env, guarded_subprocess_env: dict
) -> None:
    env = {**guarded_subprocess_env, **aws_env.env()}
    registry: ModelRegistry = registered["registry"]
    arn = registered["arn"]
    with pytest.raises(UserInputError, match="has no MLflow version"):
        registry.lineage(arn)  # before the mirror step ran

    done = _run_mirror(registered, env)
    assert done.returncode == 0, done.stdout + done.stderr
    written = json.loads((registered["base"] / "processing/output/mirror/mirror.json").read_text())
    assert written["model_package_arn"] == arn and written["version"] == "1" and written["created"]
    again = _run_mirror(registered, env)  # a retried step finds its version
    assert again.returncode == 0 and "already mirrored as drone-yolo-dev version 1" in again.stdout

    lineage = registry.lineage("sagemaker:1")
    assert lineage["version"] == "1" and lineage["model_package_arn"] == arn
    assert lineage["approval"] == {"mlflow": PENDING, "sagemaker": PENDING, "in_step": True}
    assert lineage["data"]["dataset_hash"] == "d" * 64
    assert lineage["data"]["dataset_location"].endswith("/executions/abc123/dataset")
    assert lineage["code_commit"] == "c0ffee"
    assert lineage["images"]["inference"].endswith("/drone-yolo-inference:latest")
    assert lineage["pipeline"]["execution"] == EXECUTION
    assert lineage["metrics"]["map50_95"] == pytest.approx(METRICS["map50_95"])
    assert lineage["artifacts"]["model_data_url"].endswith("/Train/output/model.tar.gz")
    package = registered["aws"].sagemaker.describe_model_package(ModelPackageName=arn)
    assert package["CustomerMetadataProperties"]["mlflow_model_version"] == "1"
    assert package["CustomerMetadataProperties"]["code_commit"] == "golden"  # the step's own, kept

    approved = registry.approve(arn, "beats the night set", who="tester")
    assert approved.status == APPROVED and approved.version == "1"
    assert registry.lineage(arn)["approval"] == {"mlflow": APPROVED, "sagemaker": APPROVED, "in_step": True}
    rejected = registry.reject("1", "drifted", who="tester")
    assert rejected.model_package_arn == arn
    assert registry.lineage("latest")["approval"]["sagemaker"] == REJECTED
    assert [e["action"] for e in registry.audit_entries("1")] == [APPROVED, REJECTED]


def test_mirror_without_mlflow_says_so_and_bad_arns_are_one_line(
    registered: dict, aws_env, guarded_subprocess_env: dict
) -> None:
    env = {**guarded_subprocess_env, **aws_env.env()}
    command = registered["command"]
    command[command.index("--tracking-uri") + 1] = "none"
    done = _run_mirror(registered, env)
    assert done.returncode == 0, done.stderr
    assert "no MLflow configured" in done.stdout
    command[command.index("--model-package-arn") + 1] = "not-an-arn"
    done = _run_mirror(registered, env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (
        done.stderr.strip() == "error: --model-package-arn: 'not-an-arn' is not a SageMaker model package ARN"
    )
