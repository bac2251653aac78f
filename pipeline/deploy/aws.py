"""The deployment on SageMaker: requests built from the declaration by pure functions, sent by
`SageMakerDeployer` through boto3 clients that carry the project's retry policy (`AwsClients`).

Staging: a Model from the approved package, an endpoint configuration with data capture to the
environment's S3 prefix, the endpoint `<project>-staging`, all tagged with stage, version, package
ARN and code commit. Production: the same resources for `<project>-prod`, updated blue/green with
traffic shifting, a baking period and automatic rollback on the declared CloudWatch alarms, then
target-tracking autoscaling on invocations per instance.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.aws import AwsClients
from pipeline.deploy.decisions import previous_live, rollout_outcome
from pipeline.deploy.declaration import VARIANT, Deployment
from pipeline.deploy.history import History
from yolo_core.errors import UserInputError

SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
_SETTLING = {"Creating", "Updating", "SystemUpdating", "RollingBack"}


@dataclass(frozen=True)
class Candidate:
    """The model version being deployed."""

    version: str
    package_arn: str
    commit: str
    model_dir: str = ""  # local deployments: the model folder to serve


def resource_tags(stage: str, candidate: Candidate) -> list[dict[str, str]]:
    values = {
        "stage": stage,
        "model-version": candidate.version,
        "model-package-arn": candidate.package_arn,
        "code-commit": candidate.commit or "unknown",
    }
    return [{"Key": key, "Value": value} for key, value in values.items()]


def resource_name(deployment: Deployment, stage: str, version: str, when: datetime) -> str:
    """Models and endpoint configurations are immutable: one per deployment, named after it."""
    return f"{deployment.endpoint_name(stage)}-v{version}-{when:%Y%m%d%H%M%S}"[:63]


def model_request(name: str, role: str, stage: str, candidate: Candidate) -> dict[str, Any]:
    return {
        "ModelName": name,
        "ExecutionRoleArn": role,
        "Containers": [{"ModelPackageName": candidate.package_arn}],
        "Tags": resource_tags(stage, candidate),
    }


def endpoint_config_request(
    deployment: Deployment, stage: str, name: str, model_name: str, candidate: Candidate
) -> dict[str, Any]:
    production = stage == "production"
    return {
        "EndpointConfigName": name,
        "ProductionVariants": [
            {
                "VariantName": VARIANT,
                "ModelName": model_name,
                "InstanceType": deployment.production_instance_type
                if production
                else deployment.staging_instance_type,
                "InitialInstanceCount": deployment.min_instances if production else 1,
            }
        ],
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": deployment.capture_percentage,
            "DestinationS3Uri": f"{deployment.capture_uri}/{deployment.endpoint_name(stage)}",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        },
        "Tags": resource_tags(stage, candidate),
    }


def deployment_config(deployment: Deployment, stage: str) -> dict[str, Any]:
    """Blue/green with the declared traffic shifting and baking period, rolled back by the alarms."""
    traffic = deployment.traffic
    routing: dict[str, Any] = {"Type": traffic["type"], "WaitIntervalInSeconds": traffic["wait_s"]}
    step = {"Type": "CAPACITY_PERCENT", "Value": traffic["step_percent"]}
    if traffic["type"] == "CANARY":
        routing["CanarySize"] = step
    elif traffic["type"] == "LINEAR":
        routing["LinearStepSize"] = step
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": traffic["termination_wait_s"],
        },
        "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": deployment.alarm_name(stage, alarm)} for alarm in deployment.alarms]
        },
    }


def update_endpoint_request(deployment: Deployment, stage: str, config_name: str) -> dict[str, Any]:
    return {
        "EndpointName": deployment.endpoint_name(stage),
        "EndpointConfigName": config_name,
        "DeploymentConfig": deployment_config(deployment, stage),
    }


def alarm_requests(deployment: Deployment, stage: str) -> list[dict[str, Any]]:
    endpoint = deployment.endpoint_name(stage)
    requests = []
    for alarm in deployment.alarms:
        statistic = (
            {"ExtendedStatistic": alarm.statistic}
            if alarm.statistic.startswith("p")
            else {"Statistic": alarm.statistic}
        )
        requests.append(
            {
                "AlarmName": deployment.alarm_name(stage, alarm),
                "AlarmDescription": f"{alarm.description} of {endpoint}: rolls an update back",
                "Namespace": alarm.namespace,
                "MetricName": alarm.metric,
                "Dimensions": [
                    {"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": VARIANT},
                ],
                **statistic,
                "Period": deployment.alarm_period_s,
                "EvaluationPeriods": deployment.alarm_evaluation_periods,
                "Threshold": float(alarm.threshold),
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "TreatMissingData": "notBreaching",
            }
        )
    return requests


def scaling_requests(deployment: Deployment, stage: str) -> tuple[dict[str, Any], dict[str, Any]]:
    resource = f"endpoint/{deployment.endpoint_name(stage)}/variant/{VARIANT}"
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource,
        "ScalableDimension": SCALABLE_DIMENSION,
        "MinCapacity": deployment.min_instances,
        "MaxCapacity": deployment.max_instances,
    }
    policy = {
        "PolicyName": f"{deployment.endpoint_name(stage)}-invocations",
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource,
        "ScalableDimension": SCALABLE_DIMENSION,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": float(deployment.invocations_per_instance),
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 60,
        },
    }
    return target, policy


class SageMakerDeployer:
    """Carries the declaration out in one account; records what went live in `history`."""

    def __init__(
        self, deployment: Deployment, role: str, clients: AwsClients, history: History, poll_s: float = 30.0
    ) -> None:
        self.deployment = deployment
        self.role = role
        self.clients = clients
        self.history = history
        self.poll_s = poll_s

    @property
    def sagemaker(self) -> Any:
        return self.clients.sagemaker

    def _endpoint(self, stage: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.sagemaker.describe_endpoint(EndpointName=self.deployment.endpoint_name(stage))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ValidationException":
                return None
            raise

    def _create_resources(self, stage: str, candidate: Candidate) -> str:
        when = datetime.now(UTC)
        name = resource_name(self.deployment, stage, candidate.version, when)
        self.sagemaker.create_model(**model_request(name, self.role, stage, candidate))
        self.sagemaker.create_endpoint_config(
            **endpoint_config_request(self.deployment, stage, name, name, candidate)
        )
        return name

    def _settled(self, stage: str, timeout_s: float = 3600.0) -> dict[str, Any]:
        """DescribeEndpoint once it stops changing (creating, updating, baking or rolling back)."""
        deadline = time.monotonic() + timeout_s
        while True:
            endpoint = self._endpoint(stage) or {}
            if endpoint.get("EndpointStatus") not in _SETTLING or time.monotonic() > deadline:
                return endpoint
            time.sleep(self.poll_s)

    def _put_endpoint(self, stage: str, config_name: str, candidate: Candidate, guarded: bool) -> None:
        if self._endpoint(stage) is None:
            self.sagemaker.create_endpoint(
                EndpointName=self.deployment.endpoint_name(stage),
                EndpointConfigName=config_name,
                Tags=resource_tags(stage, candidate),
            )
            return
        request = update_endpoint_request(self.deployment, stage, config_name)
        if not guarded:
            request.pop("DeploymentConfig")
        self.sagemaker.update_endpoint(**request)
        arn = self._endpoint(stage)["EndpointArn"]
        self.sagemaker.add_tags(ResourceArn=arn, Tags=resource_tags(stage, candidate))

    def stage(self, candidate: Candidate) -> str:
        """Deploys `candidate` to `<project>-staging` and returns the endpoint's name."""
        config_name = self._create_resources("staging", candidate)
        self._put_endpoint("staging", config_name, candidate, guarded=False)
        endpoint = self._settled("staging")
        if endpoint.get("EndpointStatus") != "InService":
            raise UserInputError(
                f"staging endpoint {self.deployment.endpoint_name('staging')}: "
                f"{endpoint.get('EndpointStatus')} ({endpoint.get('FailureReason', 'no reason given')})"
            )
        self.history.record("staging", **candidate.__dict__, endpoint_config=config_name)
        return self.deployment.endpoint_name("staging")

    def _alarm_states(self, stage: str) -> dict[str, str]:
        names = [self.deployment.alarm_name(stage, alarm) for alarm in self.deployment.alarms]
        alarms = self.clients.client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]
        return {alarm["AlarmName"]: alarm["StateValue"] for alarm in alarms}

    def _guard(self, stage: str) -> None:
        """Alarms first (the rollout is rolled back on them), autoscaling on the variant."""
        cloudwatch = self.clients.client("cloudwatch")
        for request in alarm_requests(self.deployment, stage):
            cloudwatch.put_metric_alarm(**request)
        target, policy = scaling_requests(self.deployment, stage)
        scaling = self.clients.client("application-autoscaling")
        scaling.register_scalable_target(**target)
        scaling.put_scaling_policy(**policy)

    def _roll_out(self, candidate: Candidate, config_name: str, action: str) -> str:
        self._guard("production")
        self._put_endpoint("production", config_name, candidate, guarded=True)
        outcome = rollout_outcome(self._settled("production"), config_name, self._alarm_states("production"))
        if outcome == "live":
            self.history.record(
                "production", **candidate.__dict__, endpoint_config=config_name, action=action
            )
        return outcome

    def promote(self, candidate: Candidate) -> str:
        """'live', or 'rolled back to <config>: <why>'."""
        return self._roll_out(candidate, self._create_resources("production", candidate), "promote")

    def rollback(self) -> tuple[dict[str, Any], str]:
        """Puts the previous production version back (its endpoint configuration still exists)."""
        previous = previous_live(self.history.read()["deployments"], "production")
        if previous is None:
            raise UserInputError(
                f"{self.deployment.endpoint_name('production')}: no previous production version recorded"
            )
        candidate = Candidate(previous["version"], previous["package_arn"], previous["commit"])
        return previous, self._roll_out(candidate, previous["endpoint_config"], "rollback")
