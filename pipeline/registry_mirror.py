"""The registry's MLflow half for a model package SageMaker registered: one version per package.

In the SageMaker pipeline the RegisterModel step creates the package (PendingManualApproval, the
evaluation attached, provenance in its metadata), and the MlflowMirror step runs this (through
`entrypoints/register_mirror.py`), so that `approve`, `reject` and `lineage`, which work through
MLflow, work for it as for a local run. The MLflow version carries the same tags a local
registration writes, and the package gets the MLflow name and version back in its metadata.
Idempotent: a retried step finds the version already tagged with the package ARN and returns it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.registry import (
    PACKAGE_TAG,
    STATUS_TAG,
    WEIGHTS_TAG,
    ModelRegistry,
    Provenance,
    evaluation_metrics,
    package_metadata,
)
from yolo_core.model_card import ModelCard
from yolo_core.retry import TRACKING, call_with_retry
from yolo_core.weights import verify_weights


@dataclass(frozen=True)
class MirroredVersion:
    name: str
    version: str
    model_package_arn: str
    run_id: str
    created: bool  # False: the version already existed (a retried step)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n"


def find_version(mlflow: Any, name: str, package_arn: str) -> Any | None:
    """The MLflow version that mirrors `package_arn`, or None."""
    versions = call_with_retry(mlflow.search_model_versions, f"name='{name}'", policy=TRACKING)
    return next((v for v in versions if v.tags.get(PACKAGE_TAG) == package_arn), None)


def _evaluation_url(package: dict[str, Any]) -> str:
    return package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri", "")


def _experiment_id(mlflow: Any, experiment: str) -> str:
    found = call_with_retry(mlflow.get_experiment_by_name, experiment, policy=TRACKING)
    if found is not None:
        return found.experiment_id
    return call_with_retry(mlflow.create_experiment, experiment, policy=TRACKING)


def _ensure_registered_model(mlflow: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        call_with_retry(mlflow.get_registered_model, name, policy=TRACKING)
    except MlflowException:
        call_with_retry(
            mlflow.create_registered_model, name, description="drone YOLO detectors", policy=TRACKING
        )


def mirror_package(
    mlflow: Any,
    sagemaker: Any,
    package_arn: str,
    model_dir: Path,
    evaluation_file: Path,
    experiment: str,
    provenance: Provenance,
) -> MirroredVersion:
    """Give `package_arn` its MLflow model version (in a register run of `experiment`)."""
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    name = package["ModelPackageGroupName"]
    _ensure_registered_model(mlflow, name)
    existing = find_version(mlflow, name, package_arn)
    if existing is not None:
        return MirroredVersion(name, str(existing.version), package_arn, existing.run_id or "", False)
    metrics = evaluation_metrics(json.loads(Path(evaluation_file).read_text()))
    card = ModelCard.load(model_dir)
    weights_sha = verify_weights(Path(model_dir) / card.weights_file, card.weights_sha256)
    model_data_url = package["InferenceSpecification"]["Containers"][0].get("ModelDataUrl", "")
    tags = {
        STATUS_TAG: package["ModelApprovalStatus"],
        PACKAGE_TAG: package_arn,
        "model_data_url": model_data_url,
        "evaluation_url": _evaluation_url(package),
        WEIGHTS_TAG: weights_sha,
        **{f"metric.{k}": f"{v:.6f}" for k, v in metrics.items()},
        **ModelRegistry._provenance_tags(provenance),
    }
    if not tags["dataset_hash"]:
        tags["dataset_hash"] = card.dataset_hash
    run = call_with_retry(
        mlflow.create_run,
        _experiment_id(mlflow, experiment),
        run_name="RegisterModel",
        tags={"step": "RegisterModel", PACKAGE_TAG: package_arn},
        policy=TRACKING,
    )
    run_id = run.info.run_id
    for key, value in metrics.items():
        call_with_retry(mlflow.log_metric, run_id, key, value, policy=TRACKING)
    call_with_retry(mlflow.log_artifact, run_id, str(evaluation_file), "evaluation", policy=TRACKING)
    call_with_retry(mlflow.set_terminated, run_id, policy=TRACKING)
    version = call_with_retry(
        mlflow.create_model_version,
        name,
        source=model_data_url or f"{run.info.artifact_uri}/evaluation",
        run_id=run_id,
        tags={k: str(v) for k, v in tags.items()},
        policy=TRACKING,
    )
    metadata = {
        **(package.get("CustomerMetadataProperties") or {}),
        "mlflow_model_name": name,
        "mlflow_model_version": str(version.version),
        "mlflow_run_id": run_id,
    }
    sagemaker.update_model_package(
        ModelPackageArn=package_arn,
        # Unchanged, but sent: moto 5.2.5 clears a status an update leaves out (AWS keeps it).
        ModelApprovalStatus=package["ModelApprovalStatus"],
        CustomerMetadataProperties=package_metadata(metadata),
    )
    return MirroredVersion(name, str(version.version), package_arn, run_id, True)
