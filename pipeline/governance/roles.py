"""Which governance role a caller acts as, and what that role may do: pure functions over the
config's `governance:` section, so the CLI, the IAM policies and the tests read one table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from pipeline.config import GOVERNANCE_ROLES, EnvConfig, Governance

# arn:aws:sts::<account>:assumed-role/<role>/<session>, arn:aws:iam::<account>:role/<path/><role>,
# arn:aws:iam::<account>:user/<name>: the shapes GetCallerIdentity answers with.
_ASSUMED_ROLE = re.compile(r"^arn:aws[a-z-]*:sts::(\d{12}):assumed-role/([^/]+)/(.+)$")
_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(?:.*/)?([^/]+)$")
_OTHER = re.compile(r"^arn:aws[a-z-]*:(?:iam|sts)::(\d{12}):(?:user|federated-user)/(?:.*/)?([^/]+)$")
LOCAL_ACCOUNT = "local"


@dataclass(frozen=True)
class Caller:
    """Who runs the command: `arn` as STS names it (or `local:<user>`), the IAM role it holds
    ("" for a user or root), the account, and a readable name (the session or user name)."""

    arn: str
    account: str
    iam_role: str
    name: str


def parse_arn(arn: str) -> Caller:
    """A GetCallerIdentity ARN as a `Caller` (an unknown shape holds no role)."""
    if found := _ASSUMED_ROLE.match(arn):
        return Caller(arn, found[1], found[2], found[3])
    if found := _ROLE.match(arn):
        return Caller(arn, found[1], found[2], found[2])
    if found := _OTHER.match(arn):
        return Caller(arn, found[1], "", found[2])
    account = arn.split(":")[4] if arn.count(":") >= 5 else ""
    return Caller(arn, account, "", arn.rsplit("/", 1)[-1])


def local_caller(user: str) -> Caller:
    return Caller(f"local:{user}", LOCAL_ACCOUNT, "", user)


def governance_role(governance: Governance, iam_role: str) -> str:
    """The governance role (data_scientist, ml_engineer, ci) an IAM role acts as, or ""."""
    for role in GOVERNANCE_ROLES:
        principal = getattr(governance.principals, role)
        if iam_role == principal.name or any(fnmatchcase(iam_role, p) for p in principal.match):
            return role
    return ""


def caller_role(config: EnvConfig, caller: Caller) -> str:
    """What `caller` acts as here: a local caller is the config's `local_role`; an AWS caller must
    be in the environment's account and hold one of its roles."""
    if caller.account == LOCAL_ACCOUNT:
        return config.governance.local_role
    if caller.account != config.account:
        return ""
    return governance_role(config.governance, caller.iam_role)


def refusal(config: EnvConfig, command: str, caller: Caller) -> str:
    """Why `caller` may not run `command` in this environment, or "" when it may."""
    allowed = list(getattr(config.governance.allowed, command))
    who = f"{caller.arn} ({caller.iam_role or 'no role'})"
    if caller.account not in {LOCAL_ACCOUNT, config.account}:
        return f"{who} is in account {caller.account}, not {config.name}'s {config.account}"
    role = caller_role(config, caller)
    if not role:
        return f"{who} is none of {config.name}'s governance roles ({_names(config)})"
    if role not in allowed:
        return f"{who} acts as {role}; {command} in {config.name} is for {' or '.join(allowed) or 'nobody'}"
    return ""


def _names(config: EnvConfig) -> str:
    principals = config.governance.principals
    return ", ".join(f"{role}: {getattr(principals, role).name}" for role in GOVERNANCE_ROLES)
