"""The CI/CD and governance artefacts under their linters, from the test environment's own install:
the workflows (actionlint; zizmor offline, every audit that needs no network), the roles and CI
stacks (cfn-lint, as every rendered template), the IAM policy documents (parliament, MEDIUM and up,
and unknown actions, fail)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lint_policies import config_findings, policy_findings

from pipeline.config import ENVIRONMENTS, load_config
from pipeline.governance.templates import ci_template, roles_template
from tests.lint_templates import assert_cfn_lint_clean

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_workflows_pass_actionlint() -> None:
    assert [w.name for w in WORKFLOWS] == ["model-build.yml", "model-deploy.yml"]
    done = _run(str(BIN / "actionlint"), *map(str, WORKFLOWS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_workflows_pass_zizmor_offline() -> None:
    done = _run(str(BIN / "zizmor"), "--offline", "--no-progress", "--persona=pedantic", ".github/workflows")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings to report" in done.stdout + done.stderr


def test_every_action_is_pinned_to_a_commit_and_checkout_keeps_no_credentials() -> None:
    for workflow in WORKFLOWS:
        for job in yaml.safe_load(workflow.read_text())["jobs"].values():
            for step in job["steps"]:
                if "uses" in step:
                    action, ref = step["uses"].split("@")
                    assert action in {"actions/checkout", "aws-actions/configure-aws-credentials"}
                    assert len(ref) == 40 and int(ref, 16) >= 0, step["uses"]
                    if action == "actions/checkout":
                        assert step["with"]["persist-credentials"] is False
            if "configure-aws-credentials" in str(job["steps"]):
                assert job["permissions"]["id-token"] == "write"
                assert not any("aws-access-key-id" in str(s.get("with", {})) for s in job["steps"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_roles_and_ci_stacks_pass_cfn_lint(env: str, tmp_path: Path) -> None:
    config = load_config(env)
    paths = []
    for name, template in (("roles", roles_template(config)), ("ci", ci_template(config))):
        path = tmp_path / f"{env}-{name}.json"
        path.write_text(json.dumps(template, indent=2))
        paths.append(path)
    assert_cfn_lint_clean(paths)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_policies_pass_parliament(env: str) -> None:
    assert config_findings(env) == {}


def test_parliament_would_catch_a_bad_policy() -> None:
    """The linter is live: a misspelt action and a mismatched resource are findings."""
    bad = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sagemaker:ApproveEverything", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket"},
        ],
    }
    issues = {line.split(" ")[0] for line in policy_findings(bad)}
    assert {"UNKNOWN_ACTION", "RESOURCE_MISMATCH"} <= issues
