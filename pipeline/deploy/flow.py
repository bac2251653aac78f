"""The declared stages, walked the same way whichever deployer carries them out.

staging (the deployer's `stage`) -> test (`checks.run_checks` through the invoke function) -> gate
(`decisions.gate_decision` over the report and the environment's policy) -> production (the
deployer's `promote`). Every decision goes to the audit trail like approvals
(`pipeline/governance/audit.py`): promotions, rollbacks, the gate's refusals (`NotPromoted`) and
rollouts the alarms undid (`RolloutReverted`).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.deploy.aws import Candidate
from pipeline.deploy.checks import Invoke, run_checks
from pipeline.deploy.decisions import StagingReport, gate_decision
from pipeline.deploy.declaration import Deployment
from pipeline.deploy.history import History, now
from pipeline.governance.audit import AuditTrail, as_trail
from yolo_core.errors import UserInputError

GATE_REFUSED = "NotPromoted"  # the staging test or the gate kept a version out of production
ROLLOUT_REVERTED = "RolloutReverted"  # production went back to its previous version on an alarm
PIPELINE = "pipeline"  # who decides what the automatic gate decides


class Deployer(Protocol):
    history: History

    def promote(self, candidate: Candidate) -> str: ...

    def rollback(self) -> tuple[dict[str, Any], str]: ...


@dataclass(frozen=True)
class HoldoutData:
    """What the staging test compares the endpoint with."""

    holdout_dir: Path
    class_names: list[str]
    registered_map50_95: float
    limit: int


@dataclass(frozen=True)
class Outcome:
    status: str  # "refused", "awaiting approval", "live", "rolled back"
    message: str
    report: StagingReport | None = None

    @property
    def ok(self) -> bool:
        return self.status in {"live", "awaiting approval"}


def audit(
    log: AuditTrail | Path, deployment: Deployment, action: str, candidate: Candidate, reason: str, who: str
) -> None:
    as_trail(log).record(
        {
            "time": now(),
            "who": who or getpass.getuser(),
            "action": action,
            "reason": reason,
            "model": deployment.package_group,
            "version": candidate.version,
            "model_package_arn": candidate.package_arn,
            "environment": deployment.env,
        },
    )


def run_staging_test(
    deployment: Deployment, invoke: Invoke, candidate: Candidate, data: HoldoutData
) -> StagingReport:
    return run_checks(
        candidate.version,
        invoke,
        data.class_names,
        data.holdout_dir,
        data.registered_map50_95,
        deployment.accuracy_tolerance,
        data.limit,
    )


def production_outcome(
    result: str, candidate: Candidate, deployment: Deployment, audit_log: AuditTrail | Path, who: str
) -> Outcome:
    """The rollout's outcome; one the alarms undid is recorded in the audit trail."""
    if result == "live":
        return Outcome(
            "live", f"production {deployment.endpoint_name('production')}: version {candidate.version} live"
        )
    audit(audit_log, deployment, ROLLOUT_REVERTED, candidate, result, who)
    return Outcome("rolled back", f"production rollout of version {candidate.version} {result}")


def refused(
    deployment: Deployment,
    candidate: Candidate,
    why: str,
    audit_log: AuditTrail | Path,
    who: str,
    report: StagingReport | None = None,
) -> Outcome:
    """A version the gate keeps out of production: recorded, then told."""
    audit(audit_log, deployment, GATE_REFUSED, candidate, why, who)
    return Outcome("refused", f"promotion of version {candidate.version} refused: {why}", report)


def deploy(
    deployment: Deployment,
    deployer: Deployer,
    stage: Callable[[Candidate], Invoke],
    candidate: Candidate,
    data: HoldoutData,
    audit_log: AuditTrail | Path,
    on_refused: Callable[[], None] = lambda: None,
    on_passed: Callable[[], Any] = lambda: None,
) -> Outcome:
    try:
        invoke = stage(candidate)
    except UserInputError as exc:  # the server or endpoint never came up: the first check failed
        on_refused()
        return refused(deployment, candidate, f"staging start failed: {exc}", audit_log, PIPELINE)
    report = run_staging_test(deployment, invoke, candidate, data)
    deployer.history.save_report(report)
    decision = gate_decision(deployment.gate, report, candidate.version)
    if decision not in {"promote", "wait"}:
        on_refused()
        return refused(deployment, candidate, decision, audit_log, PIPELINE, report)
    on_passed()
    if decision == "wait":
        return Outcome(
            "awaiting approval",
            f"staging passed; the {deployment.env} gate is manual: python -m pipeline promote --env "
            f"{deployment.env} --version {candidate.version} --reason '...'",
            report,
        )
    audit(audit_log, deployment, "Promoted", candidate, "automatic gate: staging test passed", PIPELINE)
    outcome = production_outcome(deployer.promote(candidate), candidate, deployment, audit_log, PIPELINE)
    return Outcome(outcome.status, outcome.message, report)


def promote(
    deployment: Deployment,
    deployer: Deployer,
    candidate: Candidate,
    reason: str,
    who: str,
    audit_log: AuditTrail | Path,
) -> Outcome:
    if not reason.strip():
        raise UserInputError("give a reason (--reason): the audit log records why")
    decision = gate_decision(deployment.gate, deployer.history.report(), candidate.version, reason)
    if decision != "promote":
        return refused(deployment, candidate, decision, audit_log, who)
    audit(audit_log, deployment, "Promoted", candidate, reason, who)
    return production_outcome(deployer.promote(candidate), candidate, deployment, audit_log, who)


def rollback(
    deployment: Deployment, deployer: Deployer, reason: str, who: str, audit_log: AuditTrail | Path
) -> Outcome:
    previous, result = deployer.rollback()
    candidate = Candidate(previous["version"], previous.get("package_arn", ""), previous.get("commit", ""))
    audit(audit_log, deployment, "RolledBack", candidate, reason or "rollback", who)
    outcome = production_outcome(result, candidate, deployment, audit_log, who)
    if outcome.status == "live":
        return Outcome("live", f"rolled back: {outcome.message}")
    return outcome


def deploy_local(
    deployment: Deployment,
    deployer: Any,
    candidate: Candidate,
    data: HoldoutData,
    audit_log: AuditTrail | Path,
) -> Outcome:
    """`deploy` with a `LocalDeployer`: its servers tested over HTTP, refused ones stopped."""
    from pipeline.deploy.checks import http_invoker

    return deploy(
        deployment,
        deployer,
        lambda c: http_invoker(deployer.stage(c)),
        candidate,
        data,
        audit_log,
        on_refused=deployer.refuse,
        on_passed=deployer.accept,
    )
