"""The deployment's decisions alone (pure functions over data), its declaration from the configs,
and its CloudFormation templates under cfn-lint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.deploy import flow
from pipeline.deploy.aws import Candidate
from pipeline.deploy.decisions import (
    CheckResult,
    StagingReport,
    accuracy_failure,
    gate_decision,
    matches_pattern,
    previous_live,
    promotion_refusal,
    rollout_outcome,
)
from pipeline.deploy.declaration import build_deployment
from pipeline.deploy.history import History
from pipeline.deploy.templates import write_templates
from tests.lint_templates import assert_cfn_lint_clean

ROOT = Path(__file__).resolve().parent.parent


def approval_event(group: str, status: str) -> dict:
    """The shape SageMaker sends (AWS docs: "SageMaker Model Package State Change")."""
    return {
        "version": "0",
        "id": "5b6e4a1a-0000-0000-0000-000000000000",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/3"],
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": 3,
            "ModelPackageArn": f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{group}/3",
            "ModelApprovalStatus": status,
        },
    }


def test_approval_pattern_matches_approved_only() -> None:
    deployment = build_deployment(load_config("dev"))
    assert matches_pattern(deployment.approval_pattern, approval_event("drone-yolo-dev", "Approved"))
    assert not matches_pattern(deployment.approval_pattern, approval_event("drone-yolo-dev", "Rejected"))
    assert not matches_pattern(deployment.approval_pattern, approval_event("other-group", "Approved"))


def test_accuracy_tolerance() -> None:
    assert accuracy_failure(0.58, 0.6, 0.05) is None
    failure = accuracy_failure(0.01, 0.6, 0.05)
    assert failure and "0.010" in failure and "0.600" in failure


def report(version: str, *passed: bool) -> StagingReport:
    names = ("smoke", "accuracy", "latency")
    return StagingReport(
        version, tuple(CheckResult(n, p, f"{n} detail") for n, p in zip(names, passed, strict=False))
    )


def test_gate_by_policy_and_report() -> None:
    good, bad = report("3", True, True, True), report("3", True, False, True)
    assert gate_decision("automatic", good, "3") == "promote"
    assert gate_decision("manual", good, "3") == "wait"
    assert gate_decision("manual", good, "3", "looks fine") == "promote"
    assert gate_decision("manual", bad, "3", "ship it") == "staging accuracy check failed: accuracy detail"
    assert "no staging test" in gate_decision("automatic", good, "4")
    assert "no staging test" in promotion_refusal(None, "3")


def test_previous_live_skips_redeploys_and_follows_rollbacks() -> None:
    history = [
        {"stage": "production", "version": "1"},
        {"stage": "staging", "version": "2"},
        {"stage": "production", "version": "2"},
        {"stage": "production", "version": "2"},
    ]
    assert previous_live(history, "production")["version"] == "1"
    assert previous_live(history + [{"stage": "production", "version": "1"}], "production")["version"] == "2"
    assert previous_live(history[:1], "production") is None


def test_rollout_outcome() -> None:
    live = {"EndpointStatus": "InService", "EndpointConfigName": "new"}
    assert rollout_outcome(live, "new", {"a": "OK"}) == "live"
    back = {"EndpointStatus": "InService", "EndpointConfigName": "old"}
    assert (
        rollout_outcome(back, "new", {"x-5xx": "ALARM", "b": "OK"}) == "rolled back to old: alarm x-5xx fired"
    )


def test_per_environment_declaration() -> None:
    dev, prod = (build_deployment(load_config(env)) for env in ("dev", "prod"))
    assert (dev.gate, prod.gate) == ("automatic", "manual")
    assert prod.endpoint_name("staging") == "drone-yolo-prod-staging"
    assert prod.capture_uri == "s3://drone-yolo-prod-345678901234/drone-yolo/data-capture"
    assert {a.metric for a in prod.alarms} == {"Invocation5XXErrors", "ModelLatency", "ModelError"}


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_templates_pass_cfn_lint(env: str, tmp_path: Path) -> None:
    config = load_config(env)
    assert_cfn_lint_clean(write_templates(config, tmp_path))
    production = json.loads((tmp_path / f"{env}-endpoint-production.json").read_text())
    endpoint = production["Resources"]["Endpoint"]["Properties"]
    assert "BlueGreenUpdatePolicy" in endpoint["DeploymentConfig"]
    assert len(endpoint["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]) == 3
    rule = json.loads((tmp_path / f"{env}-approval-rule.json").read_text())
    pattern = rule["Resources"]["ApprovalRule"]["Properties"]["EventPattern"]
    assert pattern == build_deployment(config).approval_pattern  # one declaration, two renderings


def test_templates_command_and_bad_input(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "pipeline"]
    done = subprocess.run(
        [*run, "templates", "--env", "prod", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True
    )
    written = {path.name for path in tmp_path.glob("prod-*.json")}
    expected = {"endpoint-staging", "endpoint-production", "approval-rule", "monitoring", "roles", "ci"}
    assert done.returncode == 0 and written == {f"prod-{name}.json" for name in expected}, done.stderr
    done = subprocess.run(
        [*run, "rollback", "--env", "dev", "--local", "--work-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "no previous production version" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


class AlarmedRollout:
    """A deployer whose production rollout SageMaker undid on an alarm (moto runs no rollouts), over
    a real deployment history: what `promote` does with that answer is the code under test."""

    def __init__(self, folder: Path) -> None:
        self.history = History(str(folder))
        self.promoted: list[str] = []

    def promote(self, candidate: Candidate) -> str:
        self.promoted.append(candidate.version)
        return "rolled back to old: alarm x-5xx fired"

    def rollback(self) -> tuple[dict, str]:
        raise AssertionError("not called")


def test_the_gates_refusals_and_undone_rollouts_are_in_the_audit_trail(tmp_path: Path) -> None:
    deployment, audit = build_deployment(load_config("dev")), tmp_path / "audit.jsonl"
    deployer = AlarmedRollout(tmp_path / "history")
    deployer.history.save_report(report("3", True, False, True))
    held = flow.promote(deployment, deployer, Candidate("3", "arn:3", "c3"), "ship it", "ann", audit)
    assert held.status == "refused" and deployer.promoted == []

    deployer.history.save_report(report("4", True, True, True))
    undone = flow.promote(deployment, deployer, Candidate("4", "arn:4", "c4"), "better", "ann", audit)
    assert undone.status == "rolled back" and deployer.promoted == ["4"]

    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(e["action"], e["version"], e["who"]) for e in events] == [
        (flow.GATE_REFUSED, "3", "ann"),
        ("Promoted", "4", "ann"),
        (flow.ROLLOUT_REVERTED, "4", "ann"),
    ]
    assert events[0]["reason"] == "staging accuracy check failed: accuracy detail"
    assert events[2]["reason"] == "rolled back to old: alarm x-5xx fired"
