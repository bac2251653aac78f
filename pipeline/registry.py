"""The model registry: an MLflow model version and a SageMaker model package, kept in step.

Registering writes both, each pointing at the other (an MLflow tag holds the package ARN, the
package's metadata holds the MLflow name and version); approving or rejecting changes both, undoing
the first change if the second fails, and records who, when and why in the audit trail
(`pipeline/governance/audit.py`: the environment's S3 prefix, or a local file).
`lineage` answers, for one model version, which data, code, images and pipeline run made it.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.artifacts import split_s3_uri
from pipeline.aws import AwsClients, names_example_account
from pipeline.config import EnvConfig
from pipeline.dag import MODEL_CONTENT_TYPES, MODEL_RESPONSE_TYPES
from pipeline.governance.audit import AuditTrail, as_trail, s3_trail
from yolo_core.errors import UserInputError, one_line
from yolo_core.model_card import ModelCard
from yolo_core.retry import TRACKING, apply_mlflow_http_policy, call_with_retry
from yolo_core.weights import verify_weights

PENDING, APPROVED, REJECTED = "PendingManualApproval", "Approved", "Rejected"
APPROVED_ALIAS = "approved"
PACKAGE_TAG = "sagemaker_model_package_arn"
STATUS_TAG = "approval_status"
WEIGHTS_TAG = "weights_sha256"
_METADATA_LIMIT = 256  # SageMaker's limit on a customer metadata value


def package_metadata(values: dict[str, Any]) -> dict[str, str]:
    """A model package's CustomerMetadataProperties: set values only, cut to SageMaker's limit."""
    return {key: str(value)[:_METADATA_LIMIT] for key, value in values.items() if value}


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    model_package_arn: str
    status: str
    model_data_url: str


@dataclass(frozen=True)
class Provenance:
    """Where a model came from: recorded on both sides at registration."""

    dataset_hash: str
    input_data_uri: str
    dataset_location: str
    code_commit: str
    images: dict[str, str]
    pipeline_run_id: str
    pipeline_execution: str = ""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _pack_model(model_dir: Path, target: Path) -> Path:
    """SageMaker hosts a model from a model.tar.gz whose root is the model folder's content."""
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(Path(model_dir).iterdir()):
            archive.add(path, arcname=path.name)
    return target


def evaluation_metrics(evaluation: dict[str, Any]) -> dict[str, float]:
    """`{"metrics": {"map50": {"value": v}}}` -> `{"map50": v}` (the PropertyFile's shape)."""
    try:
        return {name: float(entry["value"]) for name, entry in evaluation["metrics"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise UserInputError(f"evaluation.json: expected metrics.<name>.value numbers ({exc})") from None


MONITORING_ARTIFACTS = "monitoring"  # the register run's artifact folder of the two files below


@dataclass(frozen=True)
class MonitoringBaselines:
    """What the monitor needs of a registered model: preprocess's baseline.json and the
    evaluation's monitoring_constraints.json."""

    baseline: Path
    constraints: Path


def _drift_check_baselines(urls: dict[str, str]) -> dict[str, Any]:
    """SageMaker's place for a package's monitoring baselines (ModelDataQuality)."""
    if not urls:
        return {}
    quality = {
        "Statistics": {"ContentType": "application/json", "S3Uri": urls["baseline"]},
        "Constraints": {"ContentType": "application/json", "S3Uri": urls["constraints"]},
    }
    return {"DriftCheckBaselines": {"ModelDataQuality": quality}}


class ModelRegistry:
    def __init__(
        self, config: EnvConfig, tracking_uri: str, aws: AwsClients, audit_log: AuditTrail | Path
    ) -> None:
        from mlflow import MlflowClient

        apply_mlflow_http_policy()  # MLflow's HTTP client fails fast: TRACKING below does the retrying
        self.config = config
        self.name = config.model_package_group
        self.mlflow = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.aws = aws
        self.audit_log = as_trail(audit_log)

    # -- registration -----------------------------------------------------------------------
    def register(
        self,
        model_dir: Path,
        evaluation_file: Path,
        run_id: str,
        provenance: Provenance,
        monitoring: MonitoringBaselines | None = None,
    ) -> RegisteredModel:
        """Register the model on both sides, PendingManualApproval, with its evaluation attached,
        and the baseline and constraints the monitor checks its traffic against when given (the
        package's DriftCheckBaselines; tags `monitoring.*_url` in MLflow).

        Weights that differ from their card's digest are refused before anything is uploaded; both
        sides record the digest of the file registered (the card's, or computed if it has none).
        """
        evaluation = json.loads(Path(evaluation_file).read_text())
        metrics = evaluation_metrics(evaluation)
        card = ModelCard.load(model_dir)
        model_tags = {WEIGHTS_TAG: verify_weights(Path(model_dir) / card.weights_file, card.weights_sha256)}
        model_data_url, evaluation_url = self._upload(model_dir, evaluation_file, run_id)
        baselines = self._upload_baselines(monitoring, run_id) if monitoring else {}
        self._ensure_package_group()
        call_with_retry(self.mlflow.log_artifacts, run_id, str(model_dir), "model", policy=TRACKING)
        call_with_retry(self.mlflow.log_artifact, run_id, str(evaluation_file), "evaluation", policy=TRACKING)
        log_artifact = self.mlflow.log_artifact
        for path in (monitoring.baseline, monitoring.constraints) if monitoring else ():
            call_with_retry(log_artifact, run_id, str(path), MONITORING_ARTIFACTS, policy=TRACKING)
        self._ensure_registered_model()
        tags = {
            STATUS_TAG: PENDING,
            "model_data_url": model_data_url,
            "evaluation_url": evaluation_url,
            **{f"metric.{k}": f"{v:.6f}" for k, v in metrics.items()},
            **self._provenance_tags(provenance),
            **model_tags,
            **{f"monitoring.{name}_url": url for name, url in baselines.items()},
        }
        run = call_with_retry(self.mlflow.get_run, run_id, policy=TRACKING)
        version = call_with_retry(
            self.mlflow.create_model_version,
            self.name,
            source=f"{run.info.artifact_uri}/model",
            run_id=run_id,
            tags=tags,
            policy=TRACKING,
        )
        try:
            arn = self._create_package(
                model_data_url, evaluation_url, version.version, run_id, provenance, model_tags, baselines
            )
        except Exception:
            # never one side only
            call_with_retry(self.mlflow.delete_model_version, self.name, version.version, policy=TRACKING)
            raise
        call_with_retry(
            self.mlflow.set_model_version_tag, self.name, version.version, PACKAGE_TAG, arn, policy=TRACKING
        )
        return RegisteredModel(self.name, str(version.version), arn, PENDING, model_data_url)

    def _upload(self, model_dir: Path, evaluation_file: Path, run_id: str) -> tuple[str, str]:
        prefix = self.config.s3_uri("registry", self.name, run_id)
        bucket, key = split_s3_uri(prefix)
        with tempfile.TemporaryDirectory(prefix="register-") as scratch:
            archive = _pack_model(model_dir, Path(scratch) / "model.tar.gz")
            self.aws.s3.upload_file(str(archive), bucket, f"{key}/model.tar.gz")
        self.aws.s3.upload_file(str(evaluation_file), bucket, f"{key}/evaluation.json")
        return f"{prefix}/model.tar.gz", f"{prefix}/evaluation.json"

    def _upload_baselines(self, monitoring: MonitoringBaselines, run_id: str) -> dict[str, str]:
        """The monitoring baseline and constraints beside the model: {"baseline": url, ...}."""
        prefix = self.config.s3_uri("registry", self.name, run_id, "monitoring")
        bucket, key = split_s3_uri(prefix)
        urls = {}
        for name, path in (("baseline", monitoring.baseline), ("constraints", monitoring.constraints)):
            self.aws.s3.upload_file(str(path), bucket, f"{key}/{path.name}")
            urls[name] = f"{prefix}/{path.name}"
        return urls

    def _ensure_package_group(self) -> None:
        groups = self.aws.sagemaker.list_model_package_groups(NameContains=self.name)[
            "ModelPackageGroupSummaryList"
        ]
        if not any(group["ModelPackageGroupName"] == self.name for group in groups):
            self.aws.sagemaker.create_model_package_group(
                ModelPackageGroupName=self.name,
                ModelPackageGroupDescription=f"drone YOLO detectors ({self.config.name})",
            )

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            call_with_retry(self.mlflow.get_registered_model, self.name, policy=TRACKING)
        except MlflowException:
            call_with_retry(
                self.mlflow.create_registered_model,
                self.name,
                description="drone YOLO detectors",
                policy=TRACKING,
            )

    @staticmethod
    def _provenance_tags(provenance: Provenance) -> dict[str, str]:
        return {
            "dataset_hash": provenance.dataset_hash,
            "input_data_uri": provenance.input_data_uri,
            "dataset_location": provenance.dataset_location,
            "code_commit": provenance.code_commit,
            "pipeline_run_id": provenance.pipeline_run_id,
            "pipeline_execution": provenance.pipeline_execution,
            **{f"image.{name}": uri for name, uri in provenance.images.items()},
        }

    def _create_package(
        self,
        model_data_url: str,
        evaluation_url: str,
        version: str,
        run_id: str,
        provenance: Provenance,
        model_tags: dict[str, str],
        baselines: dict[str, str],
    ) -> str:
        recorded = {**self._provenance_tags(provenance), **model_tags}  # as MLflow's tags
        metadata = {
            "mlflow_model_name": self.name,
            "mlflow_model_version": str(version),
            "mlflow_run_id": run_id,
            **{k.replace(".", "_"): v for k, v in recorded.items()},
        }
        response = self.aws.sagemaker.create_model_package(
            ModelPackageGroupName=self.name,
            ModelPackageDescription=f"MLflow {self.name} version {version}",
            ModelApprovalStatus=PENDING,
            InferenceSpecification={
                "Containers": [{"Image": provenance.images["inference"], "ModelDataUrl": model_data_url}],
                "SupportedContentTypes": list(MODEL_CONTENT_TYPES),
                "SupportedResponseMIMETypes": list(MODEL_RESPONSE_TYPES),
            },
            ModelMetrics={
                "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation_url}}
            },
            CustomerMetadataProperties=package_metadata(metadata),
            **_drift_check_baselines(baselines),
        )
        return response["ModelPackageArn"]

    # -- approval ----------------------------------------------------------------------------
    def resolve_version(self, version: str) -> str:
        """The MLflow version number of `version`: a number, `latest`, a SageMaker model package
        ARN, or `sagemaker:N` (version N of the package group)."""
        if version.startswith("sagemaker:"):
            version = self.package_arn(version.removeprefix("sagemaker:"))
        if version.startswith("arn:"):
            return self._mirroring(version)
        if version != "latest":
            return version
        versions = call_with_retry(self.mlflow.search_model_versions, f"name='{self.name}'", policy=TRACKING)
        if not versions:
            raise UserInputError(f"model {self.name!r} has no registered versions")
        return str(max(int(v.version) for v in versions))

    def package_arn(self, number: str) -> str:
        """The ARN of version `number` of this environment's model package group."""
        if not number.isdigit():
            raise UserInputError(f"--version sagemaker:{number}: expected a package version number")
        group = self.aws.sagemaker.describe_model_package_group(ModelPackageGroupName=self.name)
        arn = group["ModelPackageGroupArn"].replace(":model-package-group/", ":model-package/")
        return f"{arn}/{number}"

    def _mirroring(self, arn: str) -> str:
        """The MLflow version that mirrors the package `arn` (written by the MlflowMirror step)."""
        from pipeline.registry_mirror import find_version

        found = find_version(self.mlflow, self.name, arn)
        if found is None:
            raise UserInputError(
                f"model package {arn} has no MLflow version in {self.name!r}: "
                "its pipeline's MlflowMirror step has not run against this tracking store"
            )
        return str(found.version)

    def _version(self, version: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return call_with_retry(
                self.mlflow.get_model_version, self.name, self.resolve_version(version), policy=TRACKING
            )
        except MlflowException:
            raise UserInputError(f"model {self.name!r} has no version {version!r}") from None

    def approved_version(self, version: str, in_sagemaker: bool) -> Any:
        """The MLflow model version `version` names, refused unless it is Approved: in its SageMaker
        package when `in_sagemaker` (that is what gates an endpoint), else in MLflow's own record
        (a local deployment needs no AWS)."""
        model_version = self._version(version)
        tags = model_version.tags
        status = self._package_status(tags.get(PACKAGE_TAG, "")) if in_sagemaker else tags.get(STATUS_TAG)
        if status != APPROVED:
            raise UserInputError(
                f"model {self.name} version {model_version.version} is {status or 'not approved'}: "
                f"approve it first (python -m pipeline approve --version {model_version.version} "
                "--reason ...)"
            )
        return model_version

    def approve(self, version: str, reason: str, who: str | None = None) -> RegisteredModel:
        return self._decide(version, APPROVED, reason, who)

    def reject(self, version: str, reason: str, who: str | None = None) -> RegisteredModel:
        return self._decide(version, REJECTED, reason, who)

    def _decide(self, version: str, status: str, reason: str, who: str | None) -> RegisteredModel:
        if not reason.strip():
            raise UserInputError("give a reason (--reason): the audit log records why")
        who = who or getpass.getuser()
        model_version = self._version(version)
        arn = model_version.tags.get(PACKAGE_TAG, "")
        if not arn:
            raise UserInputError(
                f"model {self.name} version {model_version.version} has no SageMaker package tag"
            )
        package = self.aws.sagemaker.describe_model_package(ModelPackageName=arn)
        previous = package["ModelApprovalStatus"]
        when = _now()
        self._update_package(package, status, f"{who}: {reason}"[:1024])
        try:
            for key, value in {
                STATUS_TAG: status,
                "decided_by": who,
                "decided_at": when,
                "decision_reason": reason,
            }.items():
                call_with_retry(
                    self.mlflow.set_model_version_tag,
                    self.name,
                    model_version.version,
                    key,
                    value,
                    policy=TRACKING,
                )
            if status == APPROVED:
                call_with_retry(
                    self.mlflow.set_registered_model_alias,
                    self.name,
                    APPROVED_ALIAS,
                    model_version.version,
                    policy=TRACKING,
                )
            elif self._alias_version() == str(model_version.version):
                call_with_retry(
                    self.mlflow.delete_registered_model_alias, self.name, APPROVED_ALIAS, policy=TRACKING
                )
        except Exception:
            # Neither side may keep a half-made decision: SageMaker's package gates deployment, so
            # it is restored first; MLflow's status tag is put back where MLflow still answers.
            self._update_package(package, previous, package.get("ApprovalDescription", "restored"))
            with contextlib.suppress(Exception):
                call_with_retry(
                    self.mlflow.set_model_version_tag,
                    self.name,
                    model_version.version,
                    STATUS_TAG,
                    previous,
                    policy=TRACKING,
                )
            raise
        self._audit(
            {
                "time": when,
                "who": who,
                "action": status,
                "previous": previous,
                "reason": reason,
                "model": self.name,
                "version": str(model_version.version),
                "model_package_arn": arn,
            }
        )
        return RegisteredModel(
            self.name, str(model_version.version), arn, status, model_version.tags.get("model_data_url", "")
        )

    def _update_package(self, package: dict[str, Any], status: str, description: str) -> None:
        # Send the metadata back whole: some implementations replace it rather than merge it.
        self.aws.sagemaker.update_model_package(
            ModelPackageArn=package["ModelPackageArn"],
            ModelApprovalStatus=status,
            ApprovalDescription=description,
            CustomerMetadataProperties=package.get("CustomerMetadataProperties") or {"status": status},
        )

    def _alias_version(self) -> str:
        from mlflow.exceptions import MlflowException

        try:
            found = call_with_retry(
                self.mlflow.get_model_version_by_alias, self.name, APPROVED_ALIAS, policy=TRACKING
            )
            return str(found.version)
        except MlflowException:
            return ""

    def _audit(self, entry: dict[str, Any]) -> None:
        self.audit_log.record({**entry, "environment": self.config.name})

    def audit_entries(self, version: str | None = None) -> list[dict[str, Any]]:
        entries = self.audit_log.read()
        return [
            e
            for e in entries
            if e.get("model") == self.name and (version is None or e.get("version") == version)
        ]

    # -- lineage -----------------------------------------------------------------------------
    def _package_status(self, arn: str) -> str:
        """The package's approval status, or why it cannot be read (lineage still answers)."""
        from botocore.exceptions import BotoCoreError, ClientError

        if not arn:
            return "no package"
        try:
            return self.aws.sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]
        except (BotoCoreError, ClientError) as exc:
            return f"unavailable ({exc})"

    def _environment_trail(self) -> tuple[list[dict[str, Any]], str]:
        """The environment's S3 trail (where guarded AWS commands record), and where it was read
        from or why it was not: lineage reads it beside this registry's own trail, so a version
        approved on AWS shows its decisions wherever lineage is asked."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self.audit_log.on_s3:
            return [], ""  # it is this registry's own trail
        if names_example_account(self.config):
            return [], "not read (the config names the example account)"
        trail = s3_trail(self.config, self.aws.s3)
        try:
            return trail.read(), trail.location
        except (BotoCoreError, ClientError, UserInputError, ValueError) as exc:
            return [], f"unavailable ({one_line(str(exc))})"

    def _lineage_audit(self, version: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """This version's events from both trails, oldest first, and which trails were read."""
        shared, shared_where = self._environment_trail()
        mine = [e for e in shared if e.get("model") == self.name and str(e.get("version")) == version]
        events = sorted(self.audit_entries(version) + mine, key=lambda e: str(e.get("time", "")))
        trails = {"registry": self.audit_log.location}
        if shared_where:
            trails["environment"] = shared_where
        return events, trails

    def lineage(self, version: str) -> dict[str, Any]:
        model_version = self._version(version)
        tags = dict(model_version.tags)
        arn = tags.get(PACKAGE_TAG, "")
        sagemaker_status = self._package_status(arn)
        events, trails = self._lineage_audit(str(model_version.version))
        return {
            "model": self.name,
            "version": str(model_version.version),
            "approval": {
                "mlflow": tags.get(STATUS_TAG, ""),
                "sagemaker": sagemaker_status,
                "in_step": tags.get(STATUS_TAG, "") == sagemaker_status,
            },
            "data": {
                "input_data_uri": tags.get("input_data_uri", ""),
                "dataset_hash": tags.get("dataset_hash", ""),
                "dataset_location": tags.get("dataset_location", ""),
            },
            "code_commit": tags.get("code_commit", ""),
            "images": {
                k.removeprefix("image."): v for k, v in sorted(tags.items()) if k.startswith("image.")
            },
            "pipeline": {
                "mlflow_pipeline_run_id": tags.get("pipeline_run_id", ""),
                "mlflow_register_run_id": model_version.run_id,
                "execution": tags.get("pipeline_execution", ""),
            },
            "metrics": {
                k.removeprefix("metric."): float(v)
                for k, v in sorted(tags.items())
                if k.startswith("metric.")
            },
            "artifacts": {
                "model_data_url": tags.get("model_data_url", ""),
                WEIGHTS_TAG: tags.get(WEIGHTS_TAG, ""),
                "evaluation_url": tags.get("evaluation_url", ""),
                "mlflow_source": model_version.source,
            },
            "model_package_arn": arn,
            "audit": events,
            "audit_trails": trails,
        }
