"""Acting as a governance role over moto: the roles of an environment created in its account with
the policy documents the project generates, and credentials of an assumed-role session of one.

moto lets AssumeRole name a role in any account and answers GetCallerIdentity with that account's
assumed-role ARN; the bundled configs' accounts differ (dev 123456789012, prod 345678901234), so
the roles and everything the test registers live in the config's own account, as they would.
"""

from __future__ import annotations

import json

import boto3

from pipeline.config import EnvConfig
from pipeline.governance.policies import HUMAN_AND_CI, role_names, role_policies

BOOTSTRAP = "bootstrap-admin"  # the session that creates the roles (an account admin, in real life)


def credentials(account: str, role: str, session: str) -> dict[str, str]:
    """Environment variables for an assumed-role session of `role` in `account`."""
    sts = boto3.client("sts")
    found = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName=session)
    creds = found["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }


def create_roles(config: EnvConfig) -> dict[str, str]:
    """The data scientist, ML engineer and CI roles in the config's account: their ARNs by role."""
    iam = boto3.session.Session(**_keys(credentials(config.account, BOOTSTRAP, "setup"))).client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{config.account}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    names, policies = role_names(config), role_policies(config)
    arns = {}
    for role in HUMAN_AND_CI:
        made = iam.create_role(RoleName=names[role], AssumeRolePolicyDocument=json.dumps(trust))
        iam.put_role_policy(
            RoleName=names[role], PolicyName="least-privilege", PolicyDocument=json.dumps(policies[role])
        )
        arns[role] = made["Role"]["Arn"]
    return arns


def act_as(config: EnvConfig, role: str, session: str) -> dict[str, str]:
    """Credentials of `session` in the config's `role` (data_scientist, ml_engineer, ci)."""
    return credentials(config.account, role_names(config)[role], session)


def _keys(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": env["AWS_SESSION_TOKEN"],
    }
