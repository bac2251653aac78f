"""Governance as pure functions and files: callers from STS ARNs, who may do what where, the
config's separation of duties, the policies' shape, the local audit trail. No AWS, no server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.config import CONFIG_DIR, ENVIRONMENTS, GUARDED_ACTIONS, load_config
from pipeline.governance.audit import REFUSED, AuditTrail, Context, event_line
from pipeline.governance.policies import ROLE_KEYS, role_names, role_policies, trust_policy
from pipeline.governance.roles import caller_role, local_caller, parse_arn, refusal
from yolo_core.errors import UserInputError

pytestmark = pytest.mark.ci
DEV, PROD = load_config("dev"), load_config("prod")


def assumed(config, role: str, session: str = "alice"):
    return parse_arn(f"arn:aws:sts::{config.account}:assumed-role/{role}/{session}")


def test_callers_from_the_arns_sts_answers_with() -> None:
    caller = parse_arn("arn:aws:sts::123456789012:assumed-role/drone-yolo-dev-ml-engineer/bob")
    assert (caller.account, caller.iam_role, caller.name) == (
        "123456789012",
        "drone-yolo-dev-ml-engineer",
        "bob",
    )
    assert parse_arn("arn:aws:iam::123456789012:role/team/x-ci").iam_role == "x-ci"
    user = parse_arn("arn:aws:iam::123456789012:user/moto")
    assert (user.iam_role, user.name) == ("", "moto")
    assert parse_arn("arn:aws:iam::123456789012:root").iam_role == ""
    assert local_caller("eve").arn == "local:eve"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_who_may_do_what(env: str) -> None:
    config = load_config(env)
    scientist = assumed(config, f"drone-yolo-{env}-data-scientist")
    engineer = assumed(config, f"drone-yolo-{env}-ml-engineer")
    for action in GUARDED_ACTIONS:
        assert refusal(config, action, engineer) == ""
    for action in ("approve", "reject", "promote"):
        assert f"acts as data_scientist; {action} in {env} is for ml_engineer" in refusal(
            config, action, scientist
        )
    dev_only = "" if env == "dev" else "acts as data_scientist"
    assert dev_only in refusal(config, "deploy", scientist)
    ci = assumed(config, f"drone-yolo-{env}-ci")
    assert "acts as ci" in refusal(config, "approve", ci) and refusal(config, "deploy", ci) == ""


def test_a_role_elsewhere_or_no_role_is_refused_and_patterns_match() -> None:
    other_account = parse_arn("arn:aws:sts::999999999999:assumed-role/drone-yolo-prod-ml-engineer/bob")
    assert "is in account 999999999999, not prod's 345678901234" in refusal(PROD, "promote", other_account)
    unknown = assumed(PROD, "admin")
    assert "is none of prod's governance roles" in refusal(PROD, "promote", unknown)
    sso = PROD.governance.principals.ml_engineer.model_copy(update={"match": ["AWSReservedSSO_MLEngineer_*"]})
    principals = PROD.governance.principals.model_copy(update={"ml_engineer": sso})
    config = PROD.model_copy(
        update={"governance": PROD.governance.model_copy(update={"principals": principals})}
    )
    assert caller_role(config, assumed(PROD, "AWSReservedSSO_MLEngineer_0a1b2c")) == "ml_engineer"
    assert caller_role(DEV, local_caller("eve")) == DEV.governance.local_role == "ml_engineer"


def _config_with(tmp_path: Path, env: str, section: dict) -> Path:
    raw = yaml.safe_load((CONFIG_DIR / f"{env}.yaml").read_text())
    raw["governance"] = {**raw["governance"], **section}
    path = tmp_path / f"{env}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("env", "section", "words"),
    [
        ("dev", {"allowed": {"approve": ["data_scientist"]}}, "a data scientist may not approve anywhere"),
        ("prod", {"allowed": {"deploy": ["data_scientist"]}}, "a data scientist may not deploy in prod"),
        ("dev", {"allowed": {"promote": ["admin"]}}, "governance.allowed.promote.0"),
        ("dev", {"resource_prefix": "other"}, "does not start pipeline_name 'drone-yolo-dev'"),
        (
            "dev",
            {"ci": {"github_repository": "a/b", "github_subjects": ["repo:c/d:ref:refs/heads/main"]}},
            "a/b",
        ),
    ],
)
def test_bad_governance_is_refused_on_load(tmp_path: Path, env: str, section: dict, words: str) -> None:
    with pytest.raises(UserInputError, match="governance") as error:
        load_config(env, _config_with(tmp_path, env, section))
    assert words in str(error.value)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_policies_follow_the_table_and_keep_the_trail(env: str) -> None:
    config = load_config(env)
    policies = role_policies(config)
    assert set(policies) == set(ROLE_KEYS) and len(set(role_names(config).values())) == len(ROLE_KEYS)

    def actions(role: str, effect: str) -> set[str]:
        found = [s for s in policies[role]["Statement"] if s["Effect"] == effect]
        return {a for s in found for a in s["Action"]}

    assert "sagemaker:UpdateModelPackage" in actions("ml_engineer", "Allow")
    for role in ("data_scientist", "ci"):
        assert "sagemaker:UpdateModelPackage" not in actions(role, "Allow")
        assert "sagemaker:UpdateModelPackage" in actions(role, "Deny")
    assert ("sagemaker:CreateEndpoint" in actions("data_scientist", "Allow")) == (env == "dev")
    assert ("sagemaker:CreateTrainingJob" in actions("data_scientist", "Allow")) == (env == "dev")
    for role in ("data_scientist", "ml_engineer", "ci"):
        assert {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutBucketVersioning"} <= actions(
            role, "Deny"
        )
    everything = json.dumps(policies)
    assert '"Action": "*"' not in everything and "sagemaker:*" not in everything
    ci_trust = trust_policy(config, "ci")["Statement"][0]
    assert ci_trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert ci_trust["Condition"]["StringEquals"]["token.actions.githubusercontent.com:sub"] == list(
        config.governance.ci.github_subjects
    )


def test_the_local_trail_only_grows_and_stamps_the_context(tmp_path: Path) -> None:
    trail = AuditTrail(str(tmp_path / "audit.jsonl")).bound(
        Context("local:eve", "ml_engineer", "promote", "dev")
    )
    first = trail.record({"action": "Promoted", "version": "3", "reason": "ok"})
    trail.record({"action": REFUSED, "version": "4", "reason": "no"})
    assert [e["version"] for e in AuditTrail(trail.location).read()] == ["3", "4"]
    assert {k: first[k] for k in ("caller", "role", "command", "environment")} == {
        "caller": "local:eve",
        "role": "ml_engineer",
        "command": "promote",
        "environment": "dev",
    }
    assert event_line(first).startswith(f"{first['time']}  action=Promoted  command=promote  environment=dev")
    (tmp_path / "audit.jsonl").write_text("not json\n")
    with pytest.raises(UserInputError, match="an audit line is not JSON"):
        AuditTrail(str(tmp_path / "audit.jsonl")).read()
