"""The guarded commands over moto (STS, IAM, S3, SageMaker), run as a user types them.

The environment's roles are created in its account with the generated policies; each command runs
with an assumed-role session's credentials. A data scientist's `approve` and `promote --env prod`
are refused with one line and recorded; an ML engineer's succeed and are recorded; `python -m
pipeline audit` lists all four, each with caller ARN, action, version, environment, reason, time.
moto does not evaluate IAM policies: the refusals here are the toolkit's own (`governance.allowed`),
the policies are linted in tests/test_governance_lint.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from governance_support import act_as, create_roles
from test_deploy_cli import model, one_line_error, pipeline_command, register

from pipeline.aws import AwsClients
from pipeline.config import load_config
from pipeline.deploy.decisions import CheckResult, StagingReport
from pipeline.deploy.declaration import build_deployment
from pipeline.deploy.history import History

PROD = load_config("prod")


@pytest.fixture
def prod_roles(aws_env, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, str]]:
    """prod's roles in its account; the CI role's session is this process's AWS identity."""
    create_roles(PROD)
    sessions = {
        "data_scientist": act_as(PROD, "data_scientist", "alice"),
        "ml_engineer": act_as(PROD, "ml_engineer", "bob"),
        "ci": act_as(PROD, "ci", "model-build-1"),
    }
    for key, value in sessions["ci"].items():
        monkeypatch.setenv(key, value)
    AwsClients(PROD.region).ensure_bucket(PROD.bucket)
    return sessions


def test_a_data_scientist_is_refused_an_ml_engineer_is_not_and_the_trail_has_both(
    tmp_path: Path, aws_env, prod_roles, guarded_subprocess_env: dict
) -> None:
    base = {**guarded_subprocess_env, **aws_env.env(PROD.region)}
    scientist, engineer = ({**base, **prod_roles[role]} for role in ("data_scientist", "ml_engineer"))
    version = register(tmp_path / ".pipeline", "prod", model(tmp_path / "v1", ["car", "pedestrian"]), 0.0)
    approve = f"approve --env prod --version {version} --reason 'beats v0'"
    promote = f"promote --env prod --version {version} --reason 'staging looks right'"
    trail = f"s3://{PROD.bucket}/{PROD.prefix}/audit/prod"
    scientist_arn = f"arn:aws:sts::{PROD.account}:assumed-role/drone-yolo-prod-data-scientist/alice"
    engineer_arn = f"arn:aws:sts::{PROD.account}:assumed-role/drone-yolo-prod-ml-engineer/bob"

    for command, line in ((approve, "approve"), (promote, "promote")):
        refused = pipeline_command(tmp_path, scientist, command)
        assert one_line_error(refused) == (
            f"error: {line} refused: {scientist_arn} (drone-yolo-prod-data-scientist) acts as "
            f"data_scientist; {line} in prod is for ml_engineer{' or ci' if line == 'promote' else ''} "
            f"(recorded in {trail})"
        )
    sagemaker = AwsClients(PROD.region).sagemaker
    package = sagemaker.list_model_packages(ModelPackageGroupName=PROD.model_package_group)
    assert [p["ModelApprovalStatus"] for p in package["ModelPackageSummaryList"]] == ["PendingManualApproval"]

    approved = pipeline_command(tmp_path, engineer, approve)
    assert approved.returncode == 0, approved.stderr
    history = History(
        PROD.s3_uri("deployments", build_deployment(PROD).project), AwsClients(PROD.region).s3
    )  # moto cannot run the staging test: its passing report is recorded as deploy would
    history.save_report(StagingReport(version, (CheckResult("smoke", True, "ok"),)))
    promoted = pipeline_command(tmp_path, engineer, promote)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert promoted.stdout.strip() == f"production drone-yolo-prod-prod: version {version} live"

    listed = pipeline_command(tmp_path, scientist, "audit --env prod --json")  # reading is anyone's
    assert listed.returncode == 0, listed.stderr
    events = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(e["action"], e["command"], e["caller"], e["role"]) for e in events] == [
        ("Refused", "approve", scientist_arn, "data_scientist"),
        ("Refused", "promote", scientist_arn, "data_scientist"),
        ("Approved", "approve", engineer_arn, "ml_engineer"),
        ("Promoted", "promote", engineer_arn, "ml_engineer"),
    ]
    for event in events:
        assert event["version"] == version and event["environment"] == "prod" and event["time"]
    assert events[0]["reason"].endswith("approve in prod is for ml_engineer")
    assert [e["reason"] for e in events[2:]] == ["beats v0", "staging looks right"]

    # Lineage reads the environment's trail beside the registry's local one: the same four events.
    lineage = pipeline_command(tmp_path, scientist, f"lineage --env prod --version {version}")
    assert lineage.returncode == 0, lineage.stderr
    shown = json.loads(lineage.stdout)
    assert [(e["action"], e["command"]) for e in shown["audit"]] == [
        (e["action"], e["command"]) for e in events
    ]
    assert shown["audit_trails"]["environment"] == trail

    lines = pipeline_command(tmp_path, engineer, "audit --env prod").stdout.splitlines()
    assert len(lines) == 4 and f"caller={scientist_arn}" in lines[0] and "action=Refused" in lines[0]
    assert "command=promote" in lines[3] and f"version={version}" in lines[3]

    s3 = boto3.client("s3", region_name=PROD.region)
    assert s3.get_bucket_versioning(Bucket=PROD.bucket)["Status"] == "Enabled"
    keys = s3.list_objects_v2(Bucket=PROD.bucket, Prefix=f"{PROD.prefix}/audit/prod/")["Contents"]
    assert len(keys) == 4  # one object per event


def test_a_caller_of_no_role_or_another_account_is_refused(
    tmp_path: Path, aws_env, prod_roles, guarded_subprocess_env: dict
) -> None:
    base = {**guarded_subprocess_env, **aws_env.env(PROD.region)}
    as_moto_user = pipeline_command(tmp_path, base, "rollback --env prod --reason oops")
    assert one_line_error(as_moto_user).startswith(
        "error: rollback refused: arn:aws:sts::123456789012:user/moto (no role) is in account "
        "123456789012, not prod's 345678901234"
    )
    dev_engineer = {**base, **act_as(load_config("dev"), "ml_engineer", "carol")}
    done = pipeline_command(tmp_path, dev_engineer, "rollback --env prod --reason oops")
    assert "is in account 123456789012, not prod's 345678901234" in one_line_error(done)
    ci = {**base, **prod_roles["ci"]}
    done = pipeline_command(tmp_path, ci, "approve --env prod --version 1 --reason ok")
    assert "acts as ci; approve in prod is for ml_engineer" in one_line_error(done)
    events = [
        json.loads(x) for x in pipeline_command(tmp_path, ci, "audit --env prod --json").stdout.splitlines()
    ]
    assert [(e["command"], e["action"]) for e in events] == [("rollback", "Refused")] * 2 + [
        ("approve", "Refused")
    ]
