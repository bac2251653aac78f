"""CloudFormation for governance, from the same config and policy documents the tests lint:

- `roles_template`: the IAM roles (data scientist, ML engineer, CI, the pipeline role and one
  execution role per kind of job) with their trust and least-privilege policies, and GitHub's OIDC
  provider, so CI assumes its role with a short-lived token, never stored keys.
- `ci_template`: AWS-native CI, as the AWS reference's SageMaker project has it: a CodePipeline that
  builds (lint, tests, images, upsert and start the pipeline) and one that deploys (staging and its
  tests, a manual approval, production), both running CodeBuild on `ci/buildspec-*.yml`, which call
  the same Make targets as the GitHub workflows.

`python -m pipeline templates` writes them beside the deployment templates; cfn-lint checks them.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.config import EnvConfig
from pipeline.governance.policies import (
    GITHUB_OIDC,
    role_names,
    role_policies,
    service_trust,
    trust_policy,
)

BUILD_SPEC = "ci/buildspec-build.yml"
DEPLOY_SPEC = "ci/buildspec-deploy.yml"
CODEBUILD_IMAGE = "aws/codebuild/standard:7.0"
_DESCRIPTIONS = {
    "data_scientist": "experiments and pipelines in dev, the registry read-only; never approves",
    "ml_engineer": "approves, promotes, deploys and rolls back models",
    "ci": "builds and pushes images, upserts and starts the pipeline, deploys as allowed",
    "pipeline": "SageMaker Pipelines: starts the steps' jobs, registers models",
    "processing": "preprocess, evaluate, feature-store and mirror jobs",
    "training": "training jobs",
    "hosting": "the endpoints' models",
    "monitoring": "the monitoring job: captured traffic in, metrics and alerts out",
}


def _logical(key: str) -> str:
    return "Role" + "".join(part.title() for part in key.split("_"))


def _tags(config: EnvConfig, key: str) -> list[dict[str, str]]:
    tags = {**config.governance.tags, "governance-role": key}
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def roles_template(config: EnvConfig) -> dict[str, Any]:
    names = role_names(config)
    policies = role_policies(config)
    resources: dict[str, Any] = {
        "GitHubOidcProvider": {
            "Type": "AWS::IAM::OIDCProvider",
            "Condition": "MakeOidcProvider",
            "Properties": {"Url": f"https://{GITHUB_OIDC}", "ClientIdList": ["sts.amazonaws.com"]},
        }
    }
    for key, name in names.items():
        resources[_logical(key)] = {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": name,
                "Description": f"{config.governance.resource_prefix}: {_DESCRIPTIONS[key]}",
                "AssumeRolePolicyDocument": trust_policy(config, key),
                "MaxSessionDuration": 3600,
                "Policies": [{"PolicyName": f"{name}-least-privilege", "PolicyDocument": policies[key]}],
                "Tags": _tags(config, key),
            },
        }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"{config.governance.resource_prefix}: governance and SageMaker roles ({config.name})",
        "Parameters": {
            "CreateGitHubOidcProvider": {
                "Type": "String",
                "AllowedValues": ["true", "false"],
                "Default": "true",
                "Description": "false where the account already has GitHub's OIDC provider (one per account)",
            }
        },
        "Conditions": {"MakeOidcProvider": {"Fn::Equals": [{"Ref": "CreateGitHubOidcProvider"}, "true"]}},
        "Resources": resources,
        "Outputs": {
            f"{_logical(key)}Arn": {"Value": {"Fn::GetAtt": [_logical(key), "Arn"]}} for key in names
        },
    }


def _codebuild(config: EnvConfig, name: str, spec: str, description: str) -> dict[str, Any]:
    ci_role = config.governance.principals.ci.name
    return {
        "Type": "AWS::CodeBuild::Project",
        "Properties": {
            "Name": name,
            "Description": description,
            "ServiceRole": {"Fn::Sub": f"arn:${{AWS::Partition}}:iam::${{AWS::AccountId}}:role/{ci_role}"},
            "Source": {"Type": "CODEPIPELINE", "BuildSpec": spec},
            "Artifacts": {"Type": "CODEPIPELINE"},
            "Environment": {
                "Type": "LINUX_CONTAINER",
                "ComputeType": "BUILD_GENERAL1_MEDIUM",
                "Image": CODEBUILD_IMAGE,
                "PrivilegedMode": True,  # `make build` runs Docker
                "EnvironmentVariables": [{"Name": "ENV", "Value": config.name, "Type": "PLAINTEXT"}],
            },
            "TimeoutInMinutes": 120,
            "Tags": _tags(config, "ci"),
        },
    }


def _source(config: EnvConfig) -> dict[str, Any]:
    return {
        "Name": "Source",
        "Actions": [
            {
                "Name": "Repository",
                "ActionTypeId": {
                    "Category": "Source",
                    "Owner": "AWS",
                    "Provider": "CodeStarSourceConnection",
                    "Version": "1",
                },
                "Configuration": {
                    "ConnectionArn": {"Ref": "ConnectionArn"},
                    "FullRepositoryId": config.governance.ci.github_repository,
                    "BranchName": {"Ref": "Branch"},
                    "OutputArtifactFormat": "CODE_ZIP",
                },
                "OutputArtifacts": [{"Name": "Source"}],
            }
        ],
    }


def _build_stage(stage: str, project: str, step: str) -> dict[str, Any]:
    variables = [
        {"name": "CI_STEP", "value": step, "type": "PLAINTEXT"},
        {"name": "MODEL_VERSION", "value": "#{variables.ModelVersion}", "type": "PLAINTEXT"},
    ]
    return {
        "Name": stage,
        "Actions": [
            {
                "Name": stage,
                "ActionTypeId": {
                    "Category": "Build",
                    "Owner": "AWS",
                    "Provider": "CodeBuild",
                    "Version": "1",
                },
                "Configuration": {
                    "ProjectName": {"Ref": project},
                    "EnvironmentVariables": _json(variables),
                },
                "InputArtifacts": [{"Name": "Source"}],
            }
        ],
    }


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _pipeline_role(config: EnvConfig) -> dict[str, Any]:
    artifacts = {"Fn::Sub": "${ArtifactBucket.Arn}/*"}
    projects = [{"Fn::GetAtt": [name, "Arn"]} for name in ("BuildProject", "DeployProject")]
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": f"{config.governance.resource_prefix}: CodePipeline runs the CI projects",
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [service_trust("codepipeline.amazonaws.com", {"Ref": "AWS::AccountId"})],
            },
            "Policies": [
                {
                    "PolicyName": "run-ci",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["codebuild:BatchGetBuilds", "codebuild:StartBuild"],
                                "Resource": projects,
                            },
                            {
                                "Effect": "Allow",
                                "Action": "codestar-connections:UseConnection",
                                "Resource": {"Ref": "ConnectionArn"},
                            },
                            {
                                "Effect": "Allow",
                                "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                                "Resource": artifacts,
                            },
                            {
                                "Effect": "Allow",
                                "Action": "s3:GetBucketVersioning",
                                "Resource": {"Fn::GetAtt": ["ArtifactBucket", "Arn"]},
                            },
                        ],
                    },
                }
            ],
        },
    }


def _ci_build_access(config: EnvConfig) -> dict[str, Any]:
    """What CodeBuild needs on top of the CI role's own policy: its logs and the artifacts."""
    prefix = config.governance.resource_prefix
    account = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}"
    logs = f"{account}:log-group:/aws/codebuild/{prefix}-*"
    return {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": f"{prefix}-codebuild",
            "Roles": [config.governance.principals.ci.name],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                        "Resource": [{"Fn::Sub": logs}, {"Fn::Sub": logs + ":*"}],
                    },
                    {
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"],
                        "Resource": {"Fn::Sub": "${ArtifactBucket.Arn}/*"},
                    },
                ],
            },
        },
    }


def ci_template(config: EnvConfig) -> dict[str, Any]:
    prefix = config.governance.resource_prefix
    pipeline_common = {
        "PipelineType": "V2",
        "RoleArn": {"Fn::GetAtt": ["PipelineRole", "Arn"]},
        "ArtifactStore": {"Type": "S3", "Location": {"Ref": "ArtifactBucket"}},
    }
    approval = {
        "Name": "ManualGate",
        "Actions": [
            {
                "Name": "ApproveProduction",
                "ActionTypeId": {
                    "Category": "Approval",
                    "Owner": "AWS",
                    "Provider": "Manual",
                    "Version": "1",
                },
                "Configuration": {
                    "CustomData": f"staging of {prefix} passed its tests: promote to production?"
                },
            }
        ],
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"{prefix}: model-build and model-deploy CI, CodePipeline + CodeBuild ({config.name})",
        "Parameters": {
            "ConnectionArn": {
                "Type": "String",
                "Description": f"a CodeConnections connection to {config.governance.ci.github_repository}",
            },
            "Branch": {"Type": "String", "Default": "main", "Description": "the branch both pipelines build"},
        },
        "Resources": {
            "ArtifactBucket": {
                "Type": "AWS::S3::Bucket",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                        ]
                    },
                    "PublicAccessBlockConfiguration": {
                        "BlockPublicAcls": True,
                        "BlockPublicPolicy": True,
                        "IgnorePublicAcls": True,
                        "RestrictPublicBuckets": True,
                    },
                },
            },
            "PipelineRole": _pipeline_role(config),
            "CodeBuildAccess": _ci_build_access(config),
            "BuildProject": _codebuild(
                config,
                f"{prefix}-model-build",
                BUILD_SPEC,
                "lint, tests, images, upsert and start the pipeline",
            ),
            "DeployProject": _codebuild(
                config, f"{prefix}-model-deploy", DEPLOY_SPEC, "deploy (staging and its tests) or promote"
            ),
            "ModelBuildPipeline": {
                "Type": "AWS::CodePipeline::Pipeline",
                "Properties": {
                    "Name": f"{prefix}-model-build",
                    **pipeline_common,
                    "Variables": [{"Name": "ModelVersion", "DefaultValue": "latest"}],
                    "Stages": [_source(config), _build_stage("Build", "BuildProject", "build")],
                },
            },
            "ModelDeployPipeline": {
                "Type": "AWS::CodePipeline::Pipeline",
                "Properties": {
                    "Name": f"{prefix}-model-deploy",
                    **pipeline_common,
                    "Variables": [
                        {
                            "Name": "ModelVersion",
                            "DefaultValue": "latest",
                            "Description": "the approved version: an MLflow number or a package ARN",
                        }
                    ],
                    "Stages": [
                        _source(config),
                        _build_stage("Staging", "DeployProject", "deploy"),
                        approval,
                        _build_stage("Production", "DeployProject", "promote"),
                    ],
                },
            },
        },
        "Outputs": {
            "ModelBuildPipeline": {"Value": {"Ref": "ModelBuildPipeline"}},
            "ModelDeployPipeline": {"Value": {"Ref": "ModelDeployPipeline"}},
        },
    }
