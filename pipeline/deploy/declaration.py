"""The deployment, declared once from an environment's config: what triggers it, its stages, the
checks run against staging, the gate policy, and production's blue/green rollout, alarms and
autoscaling. The AWS deployer, the local deployer and the CloudFormation templates all read this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.config import EnvConfig

APPROVAL_EVENT_SOURCE = "aws.sagemaker"
APPROVAL_DETAIL_TYPE = "SageMaker Model Package State Change"
APPROVED = "Approved"
STAGES = ("staging", "test", "gate", "production")
CHECKS = ("smoke", "accuracy", "latency")  # run against staging, in this order
CONTENT_TYPES = ("image/jpeg", "image/png", "application/x-image", "application/json")
VARIANT = "AllTraffic"


@dataclass(frozen=True)
class Alarm:
    """A CloudWatch alarm on one endpoint metric; any of them in ALARM rolls an update back."""

    suffix: str  # the alarm is <endpoint>-<suffix>
    metric: str
    namespace: str
    statistic: str  # "Sum" or an extended statistic such as "p99"
    threshold: float
    description: str


@dataclass(frozen=True)
class Deployment:
    env: str
    project: str
    package_group: str
    gate: str  # "automatic" or "manual"
    accuracy_tolerance: float
    staging_instance_type: str
    production_instance_type: str
    capture_uri: str
    capture_percentage: int
    traffic: dict[str, Any]
    alarms: tuple[Alarm, ...]
    alarm_period_s: int
    alarm_evaluation_periods: int
    min_instances: int
    max_instances: int
    invocations_per_instance: int
    stages: tuple[str, ...] = STAGES
    checks: tuple[str, ...] = CHECKS

    def endpoint_name(self, stage: str) -> str:
        return f"{self.project}-{'prod' if stage == 'production' else stage}"

    def alarm_name(self, stage: str, alarm: Alarm) -> str:
        return f"{self.endpoint_name(stage)}-{alarm.suffix}"

    @property
    def rule_name(self) -> str:
        return f"{self.project}-model-approved"

    @property
    def approval_pattern(self) -> dict[str, Any]:
        """The EventBridge pattern: this group's packages turning Approved (never Rejected)."""
        return {
            "source": [APPROVAL_EVENT_SOURCE],
            "detail-type": [APPROVAL_DETAIL_TYPE],
            "detail": {"ModelPackageGroupName": [self.package_group], "ModelApprovalStatus": [APPROVED]},
        }


def build_deployment(config: EnvConfig) -> Deployment:
    spec = config.deployment
    alarms = (
        Alarm(
            "5xx",
            "Invocation5XXErrors",
            "AWS/SageMaker",
            "Sum",
            spec.alarms.max_5xx_errors,
            "server errors from the endpoint",
        ),
        Alarm(
            "model-latency",
            "ModelLatency",
            "AWS/SageMaker",
            "p99",
            spec.alarms.max_model_latency_ms * 1000,  # CloudWatch reports microseconds
            "p99 model latency",
        ),
        Alarm(
            "model-errors",
            "ModelError",
            "AWS/SageMaker",
            "Sum",
            spec.alarms.max_model_errors,
            "errors the model container reported",
        ),
    )
    return Deployment(
        env=config.name,
        project=spec.project,
        package_group=config.model_package_group,
        gate=spec.gate,
        accuracy_tolerance=spec.accuracy_tolerance,
        staging_instance_type=spec.staging_instance_type,
        production_instance_type=spec.production_instance_type,
        capture_uri=config.s3_uri(spec.capture_prefix),
        capture_percentage=spec.capture_percentage,
        traffic=spec.traffic.model_dump(),
        alarms=alarms,
        alarm_period_s=spec.alarms.period_s,
        alarm_evaluation_periods=spec.alarms.evaluation_periods,
        min_instances=spec.autoscaling.min_instances,
        max_instances=spec.autoscaling.max_instances,
        invocations_per_instance=spec.autoscaling.invocations_per_instance,
    )
