"""The check every guarded command (approve, reject, promote, deploy, rollback) makes before it acts:
who is calling, whether that role may do this here, and the audit trail its events go to. A refusal
is recorded in that trail before the command stops with one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.aws import AwsClients
from pipeline.config import EnvConfig
from pipeline.governance.audit import REFUSED, AuditTrail, Context, s3_trail
from pipeline.governance.caller import aws_caller, this_user
from pipeline.governance.roles import caller_role, refusal
from yolo_core.errors import UserInputError

LOCAL_AUDIT_FILE = "registry-audit.jsonl"


def trail_for(
    config: EnvConfig, local: bool, work_dir: Path, audit_log: Path | None, clients: AwsClients | None
) -> AuditTrail:
    """An explicit file; `--local`: `<work-dir>/registry-audit.jsonl`; else the environment's S3 trail."""
    if audit_log is not None:
        return AuditTrail(str(audit_log))
    if local or clients is None:
        return AuditTrail(str(Path(work_dir) / LOCAL_AUDIT_FILE))
    return s3_trail(config, clients.s3)


def authorize(
    config: EnvConfig,
    command: str,
    version: str,
    *,
    local: bool,
    work_dir: Path,
    audit_log: Path | None = None,
    who: str = "",
) -> AuditTrail:
    """The trail, bound to the caller, when the caller may run `command`; else the refusal is
    recorded there and a `UserInputError` names it."""
    clients = None if local else AwsClients(config.region)
    caller = this_user() if local else aws_caller(clients)
    context = Context(caller.arn, caller_role(config, caller), command, config.name)
    trail = trail_for(config, local, work_dir, audit_log, clients).bound(context)
    why = refusal(config, command, caller)
    if why:
        trail.record(
            {
                "action": REFUSED,
                "version": version,
                "reason": why,
                "model": config.model_package_group,
                "who": who or caller.name,
            }
        )
        raise UserInputError(f"{command} refused: {why} (recorded in {trail.location})")
    return trail


def guard(args: Any, config: EnvConfig, version: str = "") -> AuditTrail:
    """`authorize` with a command's parsed arguments (`--local`, `--work-dir`, `--audit-log`, `--who`)."""
    return authorize(
        config,
        args.command,
        version,
        local=bool(getattr(args, "local", False)),
        work_dir=args.work_dir,
        audit_log=args.audit_log,
        who=getattr(args, "who", ""),
    )
