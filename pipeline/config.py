"""Per-environment settings (dev, staging, prod): where the pipeline runs and with what.

One YAML file per environment under `pipeline/config/`. It is validated when loaded, so a typo
or an impossible value stops the command at once with the file and the field named, instead of
surfacing later as a failed SageMaker job.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from yolo_core.errors import UserInputError, one_line

CONFIG_DIR = Path(__file__).resolve().parent / "config"
ENVIRONMENTS = ("dev", "staging", "prod")

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# What a SageMaker job can reach: a SageMaker managed MLflow server (ARN) or an HTTP(S) server.
_CLOUD_TRACKING = re.compile(
    r"^(none|https?://\S+|arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:mlflow-[\w/.-]+)$"
)
# The accounts in the bundled configs: examples, never a real account to create resources in.
PLACEHOLDER_ACCOUNTS = frozenset({"123456789012", "234567890123", "345678901234"})


class _Strict(BaseModel):
    """Unknown keys are errors: a misspelt field must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


JOB_KINDS = ("processing", "training", "hosting", "monitoring")


class Roles(_Strict):
    """The roles SageMaker runs things as: one per kind of job where named (least privilege for each,
    `pipeline/governance/policies.py`), else `execution`."""

    execution: str = Field(description="role of every kind of job not named below")
    pipeline: str = Field(description="role SageMaker Pipelines assumes to start the jobs")
    processing: str = Field(default="", description="preprocess, evaluate and feature-store jobs")
    training: str = Field(default="", description="training jobs")
    hosting: str = Field(default="", description="the endpoints' models")
    monitoring: str = Field(default="", description="the monitoring pipeline's job (publishes alerts)")

    @field_validator("execution", "pipeline", *JOB_KINDS)
    @classmethod
    def _is_role_arn(cls, value: str, info: ValidationInfo) -> str:
        if (value or info.field_name in {"execution", "pipeline"}) and not _ROLE_ARN.match(value):
            raise ValueError(f"{value!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        return value

    def job_role(self, kind: str) -> str:
        """The role a job of `kind` (one of JOB_KINDS) runs as."""
        return getattr(self, kind) or self.execution


class Images(_Strict):
    """ECR repositories; the tag is a pipeline parameter so one definition runs any build."""

    registry: str = Field(description="<account>.dkr.ecr.<region>.amazonaws.com or another registry host")
    preprocess: str
    train: str
    inference: str
    tag: str = Field(default="latest", pattern=r"^[\w][\w.-]{0,127}$")

    def repository_uri(self, image: str) -> str:
        return f"{self.registry}/{getattr(self, image)}"

    def uri(self, image: str, tag: str | None = None) -> str:
        return f"{self.repository_uri(image)}:{tag or self.tag}"


class InstanceTypes(_Strict):
    preprocess: str
    train: str
    evaluate: str

    @field_validator("preprocess", "train", "evaluate")
    @classmethod
    def _is_sagemaker_type(cls, value: str) -> str:
        if not _INSTANCE_TYPE.match(value):
            raise ValueError(f"{value!r} is not a SageMaker instance type such as ml.g5.xlarge")
        return value


class Spot(_Strict):
    """Managed spot training: the job may be stopped and restarted from its checkpoints."""

    enabled: bool = True
    max_run_s: int = Field(default=86_400, gt=0, le=28 * 86_400)
    max_wait_s: int = Field(default=172_800, gt=0, le=28 * 86_400)

    @model_validator(mode="after")
    def _wait_covers_run(self) -> Spot:
        if self.max_wait_s < self.max_run_s:
            raise ValueError(
                f"max_wait_s ({self.max_wait_s}) must be at least max_run_s ({self.max_run_s}): "
                "SageMaker rejects spot jobs that may wait less than they run"
            )
        return self


class Retry(_Strict):
    """Retry of steps whose job failed for capacity or spot reasons, with backoff."""

    max_attempts: int = Field(default=3, ge=1, le=20)
    backoff_rate: float = Field(default=2.0, ge=1.0)
    interval_s: int = Field(default=60, ge=1)


class Thresholds(_Strict):
    """The quality gate: the model is registered only if every metric reaches its minimum."""

    map50_95: Fraction
    precision: Fraction
    recall: Fraction


class Training(_Strict):
    epochs: int = Field(default=100, ge=1, le=10_000)
    imgsz: int = Field(default=640, ge=32, le=4096)
    hyperparameters: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="fixed hyperparameters (yolo_core.hyperparams names)"
    )

    @field_validator("hyperparameters")
    @classmethod
    def _not_a_parameter(cls, value: dict) -> dict:
        clash = sorted({"epochs", "imgsz"} & set(value))
        if clash:
            raise ValueError(
                f"{', '.join(clash)} belong in training.epochs / training.imgsz (pipeline parameters)"
            )
        return value

    @field_validator("imgsz")
    @classmethod
    def _multiple_of_stride(cls, value: int) -> int:
        if value % 32:
            raise ValueError(f"{value} is not a multiple of 32 (the detector's largest stride)")
        return value


class FeatureStore(_Strict):
    feature_group: str = Field(pattern=_NAME.pattern)
    offline_prefix: str = "feature-store"


class TrafficShift(_Strict):
    """Blue/green traffic shifting of a production update (SageMaker deployment guardrails)."""

    type: Literal["CANARY", "LINEAR", "ALL_AT_ONCE"] = "CANARY"
    step_percent: int = Field(default=10, ge=1, le=50, description="canary size, or each linear step")
    wait_s: int = Field(default=300, ge=0, le=3600, description="baking period after each shift")
    termination_wait_s: int = Field(default=300, ge=0, le=3600, description="old fleet kept after")


class Alarms(_Strict):
    """CloudWatch alarms that roll a production update back (and page, once live)."""

    max_5xx_errors: int = Field(default=1, ge=1, description="Invocation5XXErrors per period")
    max_model_latency_ms: int = Field(default=2000, ge=1, description="ModelLatency p99")
    max_model_errors: int = Field(default=1, ge=1, description="the model's own error count per period")
    period_s: int = Field(default=60, ge=10)
    evaluation_periods: int = Field(default=2, ge=1)


class Autoscaling(_Strict):
    min_instances: int = Field(default=1, ge=1)
    max_instances: int = Field(default=2, ge=1)
    invocations_per_instance: int = Field(default=100, ge=1, description="target, per minute")

    @model_validator(mode="after")
    def _max_covers_min(self) -> Autoscaling:
        if self.max_instances < self.min_instances:
            raise ValueError(
                f"max_instances ({self.max_instances}) is below min_instances ({self.min_instances})"
            )
        return self


class Deployment(_Strict):
    """Staging, its tests, the gate and production for approved models of this environment."""

    project: str = Field(pattern=_NAME.pattern, description="endpoints are <project>-staging / -prod")
    gate: Literal["automatic", "manual"] = "manual"
    accuracy_tolerance: Fraction = Field(default=0.05, description="endpoint mAP50-95 below registered")
    holdout_dataset: str = Field(default="", description="labelled YOLO folder sent through staging")
    holdout_images: int = Field(default=16, ge=1, le=1000)
    staging_instance_type: str = "ml.m5.xlarge"
    production_instance_type: str = "ml.g4dn.xlarge"
    capture_prefix: str = "data-capture"
    capture_percentage: int = Field(default=100, ge=0, le=100)
    traffic: TrafficShift = TrafficShift()
    alarms: Alarms = Alarms()
    autoscaling: Autoscaling = Autoscaling()

    @field_validator("staging_instance_type", "production_instance_type")
    @classmethod
    def _is_sagemaker_type(cls, value: str) -> str:
        if not _INSTANCE_TYPE.match(value):
            raise ValueError(f"{value!r} is not a SageMaker instance type such as ml.m5.xlarge")
        return value


GOVERNANCE_ROLES = ("data_scientist", "ml_engineer", "ci")
GUARDED_ACTIONS = ("approve", "reject", "promote", "deploy", "rollback")
GovernanceRole = Literal["data_scientist", "ml_engineer", "ci"]
_ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_ROLE_PATTERN = re.compile(r"^[\w+=,.@*?-]{1,64}$")
_OIDC_SUBJECT = re.compile(
    r"^repo:[\w.-]+/[\w.-]+:(ref:refs/(heads|tags)/[\w./*-]+|environment:[\w.-]+|pull_request)$"
)
# Separation of duties (the definition of the roles): a data scientist never decides on a
# model or promotes one, and deploys or rolls back only in dev.
_NEVER_DATA_SCIENTIST = {"approve", "reject", "promote"}
_DEV_ONLY_DATA_SCIENTIST = {"deploy", "rollback"}


class Principal(_Strict):
    """An IAM role that acts as one governance role: `name` is the role the roles stack creates;
    `match` adds role-name patterns that count as it too (for example SSO permission-set roles)."""

    name: str = Field(pattern=_ROLE_NAME.pattern, description="an IAM role name")
    match: list[str] = Field(default_factory=list, description="fnmatch patterns of more role names")

    @field_validator("match")
    @classmethod
    def _are_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if not _ROLE_PATTERN.match(pattern):
                raise ValueError(f"{pattern!r} is not an IAM role name pattern")
        return value


class Principals(_Strict):
    data_scientist: Principal
    ml_engineer: Principal
    ci: Principal

    @model_validator(mode="after")
    def _distinct(self) -> Principals:
        names = [getattr(self, role).name for role in GOVERNANCE_ROLES]
        if len(set(names)) != len(names):
            raise ValueError(f"each governance role needs its own IAM role ({', '.join(names)})")
        return self


class Allowed(_Strict):
    """Which governance roles may carry out each guarded command in this environment."""

    approve: list[GovernanceRole] = ["ml_engineer"]
    reject: list[GovernanceRole] = ["ml_engineer"]
    promote: list[GovernanceRole] = ["ml_engineer"]
    deploy: list[GovernanceRole] = ["ml_engineer", "ci"]
    rollback: list[GovernanceRole] = ["ml_engineer"]


class CiTrust(_Strict):
    """Who may assume the CI role: GitHub Actions through OIDC (`repository` and the `sub` claims
    trusted, e.g. a branch or a protected environment), and CodeBuild in this account."""

    github_repository: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    github_subjects: list[str] = Field(min_length=1)
    codebuild: bool = Field(default=True, description="the CodePipeline stack's CodeBuild may assume it")

    @model_validator(mode="after")
    def _subjects_of_the_repository(self) -> CiTrust:
        for subject in self.github_subjects:
            if not _OIDC_SUBJECT.match(subject) or not subject.startswith(f"repo:{self.github_repository}:"):
                raise ValueError(
                    f"{subject!r} is not an OIDC subject of {self.github_repository} "
                    f"(repo:{self.github_repository}:ref:refs/heads/<branch> or :environment:<name>)"
                )
        return self


class Governance(_Strict):
    """Who may do what (`pipeline/governance/`): the IAM roles of each governance role, what each
    may do here, the name prefix every policy is scoped to, and where the audit trail goes."""

    resource_prefix: str = Field(pattern=_NAME.pattern, description="every named resource starts with it")
    principals: Principals
    allowed: Allowed = Allowed()
    local_role: GovernanceRole = Field(
        default="ml_engineer", description="--local commands: the OS user acts as this role (no AWS)"
    )
    audit_prefix: str = Field(default="audit", pattern=r"^[\w.-]+(/[\w.-]+)*$")
    ci: CiTrust
    tags: dict[str, str] = Field(default_factory=dict, description="tags on the roles the stack creates")


class EnvConfig(_Strict):
    """Everything that differs between dev, staging and prod."""

    name: Literal["dev", "staging", "prod"]
    region: str
    account: str = Field(pattern=r"^\d{12}$")
    roles: Roles
    bucket: str
    prefix: str = Field(default="drone-yolo", pattern=r"^[\w.-]+(/[\w.-]+)*$")
    pipeline_name: str = Field(pattern=_NAME.pattern)
    model_package_group: str = Field(pattern=_NAME.pattern)
    mlflow_tracking_uri: str = Field(
        default="none", description="MLflow of the cloud jobs: a SageMaker MLflow ARN, http(s)://, or none"
    )
    mlflow_experiment: str = Field(default="", description="MLflow experiment ('' : the pipeline name)")
    images: Images
    instance_types: InstanceTypes
    spot: Spot = Spot()
    retry: Retry = Retry()
    thresholds: Thresholds
    training: Training = Training()
    feature_store: FeatureStore
    deployment: Deployment
    governance: Governance

    @model_validator(mode="after")
    def _governed_names(self) -> EnvConfig:
        """The policies are scoped by the prefix: a name outside it would be out of every role's reach."""
        prefix = self.governance.resource_prefix
        names = {
            "pipeline_name": self.pipeline_name,
            "model_package_group": self.model_package_group,
            "deployment.project": self.deployment.project,
            "feature_store.feature_group": self.feature_store.feature_group,
        }
        outside = [f"{field} {name!r}" for field, name in names.items() if not name.startswith(prefix)]
        if outside:
            raise ValueError(f"governance.resource_prefix {prefix!r} does not start {', '.join(outside)}")
        allowed = self.governance.allowed
        for action in GUARDED_ACTIONS:
            roles = getattr(allowed, action)
            if "data_scientist" in roles and (
                action in _NEVER_DATA_SCIENTIST or (action in _DEV_ONLY_DATA_SCIENTIST and self.name != "dev")
            ):
                where = "anywhere" if action in _NEVER_DATA_SCIENTIST else f"in {self.name}"
                raise ValueError(
                    f"governance.allowed.{action}: a data scientist may not {action} {where} "
                    "(separation of duties)"
                )
        return self

    @field_validator("region")
    @classmethod
    def _is_region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region such as eu-west-1")
        return value

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _is_cloud_tracking_uri(cls, value: str) -> str:
        value = value.strip() or "none"
        if not _CLOUD_TRACKING.match(value):
            raise ValueError(
                f"{value!r} is not reachable from a SageMaker job: give a SageMaker MLflow ARN, "
                "an http(s):// URI, or none"
            )
        return value

    @property
    def experiment_name(self) -> str:
        return self.mlflow_experiment or self.pipeline_name

    @property
    def placeholder_account(self) -> bool:
        return self.account in PLACEHOLDER_ACCOUNTS

    @field_validator("bucket")
    @classmethod
    def _is_bucket(cls, value: str) -> str:
        if not _BUCKET.match(value) or ".." in value:
            raise ValueError(f"{value!r} is not a valid S3 bucket name")
        return value

    def s3_uri(self, *parts: str) -> str:
        """An S3 URI under this environment's bucket and prefix."""
        return "/".join([f"s3://{self.bucket}", self.prefix, *[p.strip("/") for p in parts if p]])


def config_path(env: str) -> Path:
    if env not in ENVIRONMENTS:
        raise UserInputError(f"unknown environment {env!r}: choose one of {', '.join(ENVIRONMENTS)}")
    return CONFIG_DIR / f"{env}.yaml"


def _field_name(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "(top level)"


def load_config(env: str | None = None, path: Path | None = None) -> EnvConfig:
    """Load and validate one environment's YAML; `path` overrides the bundled file."""
    if path is None:
        if env is None:
            raise UserInputError("give an environment name or a config file")
        path = config_path(env)
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise UserInputError(f"{path}: the config file is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise UserInputError(f"{path}: not valid YAML ({one_line(str(exc))})") from None
    if not isinstance(raw, dict):
        raise UserInputError(f"{path}: the config must be a mapping of fields")
    if env is not None and raw.get("name", env) != env:
        raise UserInputError(
            f"{path}: field 'name' is {raw.get('name')!r} but environment {env!r} was asked for"
        )
    try:
        return EnvConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{_field_name(err['loc'])}': {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise UserInputError(f"{path}: {problems}") from None
