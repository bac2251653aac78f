"""The deployment's decisions, as pure functions over data: does an event trigger it, did staging
pass, may a version be promoted, which version is "previous", and what a finished rollout means."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def matches_pattern(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge's matching for exact values: every key of the pattern is in the event, a list
    lists the allowed values, a nested object matches the nested part of the event."""
    for key, wanted in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(wanted, dict):
            if not (isinstance(value, dict) and matches_pattern(wanted, value)):
                return False
        elif value not in wanted:
            return False
    return True


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str
    figures: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StagingReport:
    version: str
    checks: tuple[CheckResult, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "passed": self.passed, "checks": [c.__dict__ for c in self.checks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StagingReport:
        return cls(str(data["version"]), tuple(CheckResult(**c) for c in data["checks"]))


def accuracy_failure(measured: float, registered: float, tolerance: float) -> str | None:
    """Why the endpoint's mAP50-95 is not close enough to the registered evaluation, or None."""
    if measured + tolerance >= registered:
        return None
    return (
        f"mAP50-95 through the endpoint {measured:.3f} is more than {tolerance:.3f} below the "
        f"registered evaluation's {registered:.3f}"
    )


def promotion_refusal(report: StagingReport | None, version: str) -> str | None:
    """One line naming the check that refuses promotion of `version`, or None when it may go."""
    if report is None or report.version != version:
        return f"version {version} has no staging test: deploy it to staging first"
    failed = next((check for check in report.checks if not check.passed), None)
    if failed is not None:
        return f"staging {failed.name} check failed: {failed.detail}"
    return None


def gate_decision(policy: str, report: StagingReport | None, version: str, manual_reason: str = "") -> str:
    """'promote', 'wait' (a manual gate without a decision), or a one-line refusal."""
    refusal = promotion_refusal(report, version)
    if refusal:
        return refusal
    if policy == "automatic" or manual_reason.strip():
        return "promote"
    return "wait"


# The action of a history entry that records a stage's server being stopped: nothing is live there.
STOPPED = "stopped"


def previous_live(history: list[dict[str, Any]], stage: str) -> dict[str, Any] | None:
    """The deployment that was live in `stage` before the current one (what rollback restores).

    A rollback is a deployment too: rolling back twice returns to where the first one started."""
    live = [entry for entry in history if entry.get("stage") == stage and entry.get("action") != STOPPED]
    if len(live) < 2:
        return None
    current = live[-1]
    for entry in reversed(live[:-1]):
        if entry.get("version") != current.get("version"):
            return entry
    return None


def rollout_outcome(endpoint: dict[str, Any], new_config: str, alarm_states: dict[str, str]) -> str:
    """What a finished production update did, from DescribeEndpoint and the alarms' states."""
    status = endpoint.get("EndpointStatus", "")
    firing = sorted(name for name, state in alarm_states.items() if state == "ALARM")
    if status == "InService" and endpoint.get("EndpointConfigName") == new_config and not firing:
        return "live"
    reason = f"alarm {', '.join(firing)} fired" if firing else endpoint.get("FailureReason") or status
    return f"rolled back to {endpoint.get('EndpointConfigName', '?')}: {reason}"
