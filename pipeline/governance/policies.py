"""The IAM policy documents of every role, generated from the environment's config.

Each is scoped to what the config names: resources by the governance `resource_prefix` (pipelines,
jobs, models, endpoints, alarms) or by their exact name (the package group, the bucket prefix, the
image repositories), deployment resources also by the `stage` tag the deployer writes on them. What
a governance role may do follows `governance.allowed`, the table the CLI enforces, so a role's IAM
permissions and the toolkit's refusals cannot drift apart; what no one but an ML engineer may do
(change a package's approval) is denied outright to the others. The audit trail's prefix can be
written but never deleted or rewritten in place (versioning keeps every write).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.config import JOB_KINDS, EnvConfig
from pipeline.monitoring.declaration import build_monitoring

HUMAN_AND_CI = ("data_scientist", "ml_engineer", "ci")
SERVICE_ROLES = ("pipeline", *JOB_KINDS)  # assumed by SageMaker
ROLE_KEYS = (*HUMAN_AND_CI, *SERVICE_ROLES)
SAGEMAKER = "sagemaker.amazonaws.com"
GITHUB_OIDC = "token.actions.githubusercontent.com"
DEPLOY_STAGES = ["staging", "production"]  # the `stage` tag of every deployment resource


def _document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [s for s in statements if s]}


def _allow(sid: str, actions: list[str], resources: list[str] | str, **condition: Any) -> dict[str, Any]:
    statement = {"Sid": sid, "Effect": "Allow", "Action": sorted(actions), "Resource": resources}
    return {**statement, "Condition": condition} if condition else statement


def _deny(sid: str, actions: list[str], resources: list[str] | str) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Deny", "Action": sorted(actions), "Resource": resources}


@dataclass(frozen=True)
class Scope:
    """The ARNs an environment's policies name."""

    config: EnvConfig

    @property
    def prefix(self) -> str:
        return self.config.governance.resource_prefix

    def sagemaker(self, resource: str) -> str:
        # SageMaker writes resource names lower-case in its ARNs.
        return f"arn:aws:sagemaker:{self.config.region}:{self.config.account}:{resource.lower()}"

    def named(self, kind: str) -> str:
        return self.sagemaker(f"{kind}/{self.prefix}*")

    @property
    def bucket(self) -> str:
        return f"arn:aws:s3:::{self.config.bucket}"

    def objects(self, *parts: str) -> str:
        return "/".join([self.bucket, self.config.prefix, *parts, "*"])

    @property
    def audit_objects(self) -> str:
        return self.objects(self.config.governance.audit_prefix)

    @property
    def package_group(self) -> str:
        return self.sagemaker(f"model-package-group/{self.config.model_package_group}")

    @property
    def packages(self) -> str:
        return self.sagemaker(f"model-package/{self.config.model_package_group}/*")

    def repositories(self, *images: str) -> list[str]:
        """The ECR repositories of `images`, where the registry is this account's ECR."""
        images_config = self.config.images
        ecr = f"{self.config.account}.dkr.ecr.{self.config.region}.amazonaws.com"
        if images_config.registry != ecr:
            return []
        repository = f"arn:aws:ecr:{self.config.region}:{self.config.account}:repository/"
        return [repository + getattr(images_config, image) for image in images]

    def log_group(self, group: str) -> str:
        return f"arn:aws:logs:{self.config.region}:{self.config.account}:log-group:/aws/sagemaker/{group}:*"

    def alarms(self) -> str:
        return f"arn:aws:cloudwatch:{self.config.region}:{self.config.account}:alarm:{self.prefix}*"

    def role_arn(self, name: str) -> str:
        return f"arn:aws:iam::{self.config.account}:role/{name}"


def role_names(config: EnvConfig) -> dict[str, str]:
    """Every role the roles stack creates, by key: governance roles, then SageMaker's."""
    principals = config.governance.principals
    names = {role: getattr(principals, role).name for role in HUMAN_AND_CI}
    names["pipeline"] = config.roles.pipeline.rsplit("/", 1)[1]
    names |= {kind: config.roles.job_role(kind).rsplit("/", 1)[1] for kind in JOB_KINDS}
    return names


# -- statements shared by several roles -----------------------------------------------------------
def _read_registry(scope: Scope) -> list[dict[str, Any]]:
    return [
        _allow(
            "ReadRegistry",
            [
                "sagemaker:DescribeModelPackage",
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:ListModelPackages",
                "sagemaker:ListTags",
            ],
            [scope.package_group, scope.packages],
        ),
        _allow("ListRegistries", ["sagemaker:ListModelPackageGroups"], "*"),
    ]


def _audit(scope: Scope) -> list[dict[str, Any]]:
    """Write events, read the trail; never delete, expire or unversion it."""
    config = scope.config
    audit_prefix = f"{config.prefix}/{config.governance.audit_prefix}/*"
    return [
        _allow("WriteAuditEvents", ["s3:PutObject", "s3:GetObject"], scope.audit_objects),
        _allow("CheckAuditVersioning", ["s3:GetBucketVersioning"], scope.bucket),
        _allow("ListAuditTrail", ["s3:ListBucket"], scope.bucket, StringLike={"s3:prefix": [audit_prefix]}),
        _deny(
            "KeepAuditTrail",
            ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention", "s3:PutObjectLegalHold"],
            scope.audit_objects,
        ),
        _deny(
            "KeepAuditBucketVersioned",
            ["s3:PutBucketVersioning", "s3:PutLifecycleConfiguration", "s3:PutBucketPolicy"],
            scope.bucket,
        ),
    ]


def _project_data(scope: Scope, write: bool) -> list[dict[str, Any]]:
    actions = ["s3:GetObject", *(["s3:PutObject"] if write else [])]
    prefix = f"{scope.config.prefix}/*"
    return [
        _allow("ProjectData", actions, scope.objects()),
        _allow("ListProjectData", ["s3:ListBucket"], scope.bucket, StringLike={"s3:prefix": [prefix]}),
    ]


def _pass_roles(scope: Scope, sid: str, arns: list[str]) -> dict[str, Any]:
    return _allow(sid, ["iam:PassRole"], sorted(set(arns)), StringEquals={"iam:PassedToService": SAGEMAKER})


def _pipelines(scope: Scope, sid: str, change: bool) -> dict[str, Any]:
    actions = [
        "sagemaker:DescribePipeline",
        "sagemaker:DescribePipelineDefinitionForExecution",
        "sagemaker:DescribePipelineExecution",
        "sagemaker:ListPipelineExecutionSteps",
        "sagemaker:ListPipelineExecutions",
    ]
    if change:
        actions += [
            "sagemaker:AddTags",
            "sagemaker:CreatePipeline",
            "sagemaker:StartPipelineExecution",
            "sagemaker:StopPipelineExecution",
            "sagemaker:UpdatePipeline",
        ]
    resources = [scope.named("pipeline")]
    if change:
        resources.append(scope.sagemaker(f"pipeline/{scope.prefix}*/execution/*"))
    return _allow(sid, actions, resources)


def _pull_images(scope: Scope, *images: str) -> list[dict[str, Any]]:
    repositories = scope.repositories(*images)
    if not repositories:
        return []
    return [
        _allow(
            "PullImages",
            ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            repositories,
        ),
        _allow("EcrLogin", ["ecr:GetAuthorizationToken"], "*"),  # it has no resource to scope to
    ]


def _logs(scope: Scope, group: str) -> dict[str, Any]:
    return _allow(
        "JobLogs",
        ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
        [scope.log_group(group)],
    )


def _metrics(sid: str, namespace: str) -> dict[str, Any]:
    # PutMetricData has no resource: the namespace condition is its scope.
    return _allow(sid, ["cloudwatch:PutMetricData"], "*", StringLike={"cloudwatch:namespace": namespace})


def _deploy(scope: Scope) -> list[dict[str, Any]]:
    """What `deploy`, `promote` and `rollback` call (pipeline/deploy/aws.py), on this project's
    endpoints and only with the deployer's `stage` tag."""
    resources = [scope.named("model"), scope.named("endpoint-config"), scope.named("endpoint")]
    config = scope.config
    return [
        _allow(
            "CreateTaggedDeploymentResources",
            ["sagemaker:CreateEndpoint", "sagemaker:CreateEndpointConfig", "sagemaker:CreateModel"],
            resources,
            StringEquals={"aws:RequestTag/stage": DEPLOY_STAGES},
        ),
        _allow(
            "UpdateOwnEndpoints",  # the endpoint and the configuration it moves to, both the deployer's
            ["sagemaker:UpdateEndpoint"],
            [scope.named("endpoint"), scope.named("endpoint-config")],
            StringEquals={"aws:ResourceTag/stage": DEPLOY_STAGES},
        ),
        _allow(
            "ReadAndTagDeployments",
            [
                "sagemaker:AddTags",
                "sagemaker:DescribeEndpoint",
                "sagemaker:DescribeEndpointConfig",
                "sagemaker:DescribeModel",
                "sagemaker:InvokeEndpoint",
                "sagemaker:ListTags",
            ],
            resources,
        ),
        _allow("ListDeployments", ["sagemaker:ListEndpointConfigs", "sagemaker:ListEndpoints"], "*"),
        _pass_roles(scope, "PassHostingRole", [config.roles.job_role("hosting")]),
        _allow(
            "RollbackAlarms",
            ["cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm"],
            [scope.alarms()],
        ),
        _allow(
            "Autoscaling",
            ["application-autoscaling:PutScalingPolicy", "application-autoscaling:RegisterScalableTarget"],
            "*",  # scalable targets have generated ids: the namespace condition scopes them
            StringEquals={"application-autoscaling:service-namespace": "sagemaker"},
        ),
        _allow(
            "ReadAutoscaling",  # read only, and without resources or conditions to scope by
            [
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:DescribeScalingPolicies",
            ],
            "*",
        ),
        _allow(
            "AutoscalingServiceRole",
            ["iam:CreateServiceLinkedRole"],
            "*",
            StringEquals={"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"},
        ),
        _allow(
            "DeploymentHistory",
            ["s3:GetObject", "s3:PutObject"],
            [scope.objects("deployments"), scope.objects("monitoring")],
        ),
    ]


def _no_approvals(scope: Scope) -> dict[str, Any]:
    return _deny("NoApprovals", ["sagemaker:UpdateModelPackage"], scope.sagemaker("model-package/*"))


def _no_endpoints(scope: Scope) -> dict[str, Any]:
    endpoint_changes = ["sagemaker:CreateEndpoint", "sagemaker:DeleteEndpoint", "sagemaker:UpdateEndpoint"]
    return _deny("NoEndpoints", endpoint_changes, scope.sagemaker("endpoint/*"))


def _experiments(scope: Scope) -> list[dict[str, Any]]:
    """A data scientist's own jobs in dev: processing and training under the project's prefix."""
    config = scope.config
    return [
        _allow(
            "Experiments",
            [
                "sagemaker:AddTags",
                "sagemaker:CreateProcessingJob",
                "sagemaker:CreateTrainingJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:StopProcessingJob",
                "sagemaker:StopTrainingJob",
            ],
            [scope.named("processing-job"), scope.named("training-job")],
        ),
        _pass_roles(
            scope,
            "PassJobRoles",
            [config.roles.job_role("processing"), config.roles.job_role("training"), config.roles.pipeline],
        ),
    ]


# -- the roles ---------------------------------------------------------------------------------
def _may(config: EnvConfig, role: str, *commands: str) -> bool:
    return any(role in getattr(config.governance.allowed, command) for command in commands)


def data_scientist(scope: Scope) -> dict[str, Any]:
    """Experiments and pipelines in dev, the registry read everywhere; never an approval."""
    config = scope.config
    dev = config.name == "dev"
    deploys = _may(config, "data_scientist", "deploy", "rollback")
    return _document(
        *_read_registry(scope),
        *_audit(scope),
        *_project_data(scope, write=dev),
        _pipelines(scope, "Pipelines", change=dev),
        *(_experiments(scope) if dev else []),
        *(_deploy(scope) if deploys else []),
        *_pull_images(scope, *(("preprocess", "train", "inference") if dev else ())),
        _no_approvals(scope),
        {} if deploys else _no_endpoints(scope),
    )


def ml_engineer(scope: Scope) -> dict[str, Any]:
    """Approve and reject (the package's status), deploy, promote, roll back."""
    return _document(
        *_read_registry(scope),
        _allow("DecideApproval", ["sagemaker:UpdateModelPackage"], [scope.packages]),
        *_audit(scope),
        *_project_data(scope, write=False),
        _pipelines(scope, "Pipelines", change=False),
        *_deploy(scope),
    )


def ci(scope: Scope) -> dict[str, Any]:
    """Push the images, upsert and start the pipeline; deploy where `allowed` says; never approve."""
    config = scope.config
    repositories = scope.repositories("preprocess", "train", "inference")
    push = [
        _allow(
            "PushImages",
            [
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:CompleteLayerUpload",
                "ecr:DescribeImages",
                "ecr:DescribeRepositories",
                "ecr:InitiateLayerUpload",
                "ecr:PutImage",
                "ecr:UploadLayerPart",
            ],
            repositories,
        ),
        _allow("EcrLogin", ["ecr:GetAuthorizationToken"], "*"),  # it has no resource to scope to
    ]
    return _document(
        *_read_registry(scope),
        *_audit(scope),
        *_project_data(scope, write=True),
        _pipelines(scope, "Pipelines", change=True),
        _pass_roles(scope, "PassPipelineRole", [config.roles.pipeline]),
        *(push if repositories else []),
        *(_deploy(scope) if _may(config, "ci", "deploy", "promote", "rollback") else []),
        _no_approvals(scope),
    )


def pipeline_role(scope: Scope) -> dict[str, Any]:
    """SageMaker Pipelines: start the steps' jobs and register the model (PendingManualApproval)."""
    config = scope.config
    return _document(
        _allow(
            "RunSteps",
            [
                "sagemaker:AddTags",
                "sagemaker:CreateProcessingJob",
                "sagemaker:CreateTrainingJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:ListTags",
                "sagemaker:StopProcessingJob",
                "sagemaker:StopTrainingJob",
            ],
            [scope.named("processing-job"), scope.named("training-job")],
        ),
        _allow(
            "RegisterModels",
            [
                "sagemaker:CreateModelPackage",
                "sagemaker:CreateModelPackageGroup",
                "sagemaker:DescribeModelPackage",
                "sagemaker:DescribeModelPackageGroup",
            ],
            [scope.package_group, scope.packages],
        ),
        _pass_roles(
            scope,
            "PassJobRoles",
            [config.roles.job_role(kind) for kind in ("processing", "training", "monitoring")],
        ),
    )


def processing(scope: Scope) -> dict[str, Any]:
    """Preprocess, evaluate, the feature store and the registry mirror."""
    config = scope.config
    group = scope.sagemaker(f"feature-group/{config.feature_store.feature_group}")
    return _document(
        *_project_data(scope, write=True),
        _deny("NoAuditWrites", ["s3:PutObject"], scope.audit_objects),
        *_pull_images(scope, "preprocess", "train"),
        _logs(scope, "ProcessingJobs"),
        _allow(
            "FeatureGroup",
            ["sagemaker:CreateFeatureGroup", "sagemaker:DescribeFeatureGroup", "sagemaker:PutRecord"],
            [group],
        ),
        _pass_roles(scope, "FeatureStoreRole", [config.roles.job_role("processing")]),
        *_read_registry(scope),
    )


def training(scope: Scope) -> dict[str, Any]:
    return _document(
        *_project_data(scope, write=True),
        _deny("NoAuditWrites", ["s3:PutObject"], scope.audit_objects),
        *_pull_images(scope, "train"),
        _logs(scope, "TrainingJobs"),
        _metrics("TrainingMetrics", "/aws/sagemaker/TrainingJobs"),
    )


def hosting(scope: Scope) -> dict[str, Any]:
    """An endpoint's model: its artifact, its image, data capture."""
    return _document(
        _allow("ModelArtifacts", ["s3:GetObject"], [scope.objects("registry")]),
        _allow("DataCapture", ["s3:PutObject"], [scope.objects(scope.config.deployment.capture_prefix)]),
        *_pull_images(scope, "inference"),
        _logs(scope, "Endpoints"),
    )


def monitoring(scope: Scope) -> dict[str, Any]:
    """The monitoring job: captured traffic and references in, metrics and alerts out."""
    watch = build_monitoring(scope.config)
    config = scope.config
    bus = f"arn:aws:events:{config.region}:{config.account}:event-bus/{watch.bus_name}"
    return _document(
        *_project_data(scope, write=True),
        _deny("NoAuditWrites", ["s3:PutObject"], scope.audit_objects),
        *_pull_images(scope, "train"),
        _logs(scope, "ProcessingJobs"),
        _allow("Alerts", ["events:PutEvents"], [bus]),
        _metrics("MonitoringMetrics", watch.namespace),
    )


_DOCUMENTS = {
    "data_scientist": data_scientist,
    "ml_engineer": ml_engineer,
    "ci": ci,
    "pipeline": pipeline_role,
    "processing": processing,
    "training": training,
    "hosting": hosting,
    "monitoring": monitoring,
}


def role_policies(config: EnvConfig) -> dict[str, dict[str, Any]]:
    """Every role's identity policy, by role key (ROLE_KEYS)."""
    scope = Scope(config)
    return {key: _DOCUMENTS[key](scope) for key in ROLE_KEYS}


def service_trust(service: str, account: Any) -> dict[str, Any]:
    """`service` may assume the role, on behalf of `account` only (no confused deputy)."""
    return {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account}},
    }


def trust_policy(config: EnvConfig, key: str) -> dict[str, Any]:
    """Who may assume each role: SageMaker for its roles; people of this account signed in with MFA
    for data scientists and ML engineers; GitHub's OIDC tokens of the configured subjects (and
    CodeBuild here) for CI."""
    account = config.account
    if key in SERVICE_ROLES:
        return _document(service_trust(SAGEMAKER, account))
    if key == "ci":
        trust = config.governance.ci
        github = {
            "Effect": "Allow",
            "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{GITHUB_OIDC}"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{GITHUB_OIDC}:aud": "sts.amazonaws.com",
                    f"{GITHUB_OIDC}:sub": list(trust.github_subjects),
                }
            },
        }
        codebuild = service_trust("codebuild.amazonaws.com", account)
        return _document(github, codebuild if trust.codebuild else {})
    return _document(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        }
    )
