"""CloudFormation for the deployment, rendered from the same declaration and the same request
builders as the boto3 path: the staging and production endpoints (production with its blue/green
`DeploymentConfig`, rollback alarms and autoscaling) and the EventBridge rule on approvals; beside
them the monitoring stack and governance's roles and CI stacks (`pipeline/governance/templates.py`).

`python -m pipeline templates --env ENV --out DIR` writes them; `cfn-lint` checks them in the tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.config import EnvConfig
from pipeline.deploy.aws import (
    Candidate,
    alarm_requests,
    deployment_config,
    endpoint_config_request,
    model_request,
    scaling_requests,
)
from pipeline.deploy.declaration import Deployment, build_deployment
from pipeline.governance.templates import ci_template, roles_template
from pipeline.monitoring.declaration import build_monitoring
from pipeline.monitoring.templates import monitoring_template

_PARAMETERS = {
    "ModelPackageArn": {"Type": "String", "Description": "the approved model package to deploy"},
    "ModelVersion": {"Type": "String", "Description": "its MLflow version (a tag)"},
    "CodeCommit": {"Type": "String", "Default": "unknown", "Description": "code commit (a tag)"},
}


def _ref_candidate() -> Candidate:
    return Candidate({"Ref": "ModelVersion"}, {"Ref": "ModelPackageArn"}, {"Ref": "CodeCommit"})  # type: ignore[arg-type]


def endpoint_template(config: EnvConfig, deployment: Deployment, stage: str) -> dict[str, Any]:
    candidate = _ref_candidate()
    model = model_request("unused", config.roles.job_role("hosting"), stage, candidate)
    model.pop("ModelName")
    endpoint_config = endpoint_config_request(deployment, stage, "unused", "unused", candidate)
    endpoint_config.pop("EndpointConfigName")
    endpoint_config["ProductionVariants"][0]["ModelName"] = {"Fn::GetAtt": ["Model", "ModelName"]}
    endpoint: dict[str, Any] = {
        "EndpointName": deployment.endpoint_name(stage),
        "EndpointConfigName": {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]},
        "Tags": model["Tags"],
    }
    resources: dict[str, Any] = {
        "Model": {"Type": "AWS::SageMaker::Model", "Properties": model},
        "EndpointConfig": {"Type": "AWS::SageMaker::EndpointConfig", "Properties": endpoint_config},
        "Endpoint": {"Type": "AWS::SageMaker::Endpoint", "Properties": endpoint},
    }
    if stage == "production":
        endpoint["DeploymentConfig"] = deployment_config(deployment, stage)
        alarms = [f"Alarm{alarm.suffix.title().replace('-', '')}" for alarm in deployment.alarms]
        for name, request in zip(alarms, alarm_requests(deployment, stage), strict=True):
            resources[name] = {"Type": "AWS::CloudWatch::Alarm", "Properties": request}
        resources["Endpoint"]["DependsOn"] = alarms  # the rollback alarms exist before any update
        target, policy = scaling_requests(deployment, stage)
        target["ResourceId"] = {
            "Fn::Sub": "endpoint/${Endpoint.EndpointName}/variant/" + target["ResourceId"].rsplit("/", 1)[1]
        }
        for key in ("ServiceNamespace", "ResourceId", "ScalableDimension"):
            policy.pop(key)
        policy["ScalingTargetId"] = {"Ref": "ScalableTarget"}
        resources["ScalableTarget"] = {
            "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
            "Properties": target,
        }
        resources["ScalingPolicy"] = {
            "Type": "AWS::ApplicationAutoScaling::ScalingPolicy",
            "Properties": policy,
        }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"{deployment.endpoint_name(stage)}: the {stage} endpoint of {deployment.project}",
        "Parameters": _PARAMETERS,
        "Resources": resources,
        "Outputs": {"EndpointName": {"Value": {"Fn::GetAtt": ["Endpoint", "EndpointName"]}}},
    }


def approval_rule_template(deployment: Deployment) -> dict[str, Any]:
    """The rule whose target runs `python -m pipeline deploy --env ENV --version <package ARN>`
    (a CodeBuild project, a pipeline or a queue): it gets the approved package's ARN."""
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"deploy approved {deployment.package_group} models ({deployment.env})",
        "Parameters": {
            "DeployTargetArn": {"Type": "String", "Description": "what runs `pipeline deploy`"},
            "DeployTargetRoleArn": {
                "Type": "String",
                "Default": "",
                "Description": "role EventBridge assumes",
            },
        },
        "Conditions": {"HasRole": {"Fn::Not": [{"Fn::Equals": [{"Ref": "DeployTargetRoleArn"}, ""]}]}},
        "Resources": {
            "ApprovalRule": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "Name": deployment.rule_name,
                    "State": "ENABLED",
                    "EventPattern": deployment.approval_pattern,
                    "Targets": [
                        {
                            "Id": "deploy",
                            "Arn": {"Ref": "DeployTargetArn"},
                            "RoleArn": {
                                "Fn::If": ["HasRole", {"Ref": "DeployTargetRoleArn"}, {"Ref": "AWS::NoValue"}]
                            },
                            "InputTransformer": {
                                "InputPathsMap": {"arn": "$.detail.ModelPackageArn"},
                                "InputTemplate": f'{{"env": "{deployment.env}", "version": <arn>}}',
                            },
                        }
                    ],
                },
            }
        },
    }


def write_templates(config: EnvConfig, out: Path) -> list[Path]:
    deployment = build_deployment(config)
    out.mkdir(parents=True, exist_ok=True)
    rendered = {
        "endpoint-staging.json": endpoint_template(config, deployment, "staging"),
        "endpoint-production.json": endpoint_template(config, deployment, "production"),
        "approval-rule.json": approval_rule_template(deployment),
        "monitoring.json": monitoring_template(build_monitoring(config)),
        "roles.json": roles_template(config),
        "ci.json": ci_template(config),
    }
    paths = []
    for name, template in rendered.items():
        path = out / f"{config.name}-{name}"
        path.write_text(json.dumps(template, indent=2) + "\n")
        paths.append(path)
    return paths
