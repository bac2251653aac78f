"""The alert of a monitoring run that found violations: one EventBridge event on the project's bus,
which the declared rule routes to its target (a queue someone or something watches).

The violations come in Model Monitor's `constraint_violations.json` shape:
`{"violations": [{"feature_name", "constraint_check_type", "description"}]}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.monitoring.declaration import ALERT_DETAIL_TYPE, ALERT_SOURCE
from yolo_core.errors import UserInputError, exception_line

VIOLATION_FIELDS = ("feature_name", "constraint_check_type", "description")
# An EventBridge entry is capped at 256 KB: a run that flags every feature still fits.
MAX_LISTED_VIOLATIONS = 100


class AlertNotDelivered(UserInputError):
    """The bus refused the event: a missing bus or a denied role, the deployer's to fix."""


@dataclass(frozen=True)
class MonitoringRun:
    """One run over one window of captured traffic, and where its report is."""

    endpoint: str
    run_id: str
    start: datetime
    end: datetime
    report_uri: str

    @property
    def window(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def _violation(item: Any, where: str) -> dict[str, str]:
    if not isinstance(item, dict) or not all(isinstance(item.get(key), str) for key in VIOLATION_FIELDS):
        raise UserInputError(f"{where}: a violation needs the strings {', '.join(VIOLATION_FIELDS)}")
    return {key: item[key] for key in VIOLATION_FIELDS}


def parse_violations(document: Any, where: str) -> list[dict[str, str]]:
    """The violations of a `constraint_violations.json` document, checked field by field."""
    if not isinstance(document, dict) or not isinstance(document.get("violations"), list):
        raise UserInputError(f"{where}: expected {{'violations': [...]}}")
    return [_violation(item, f"{where}: violations[{i}]") for i, item in enumerate(document["violations"])]


def read_violations(path: Path) -> list[dict[str, str]]:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read the violations ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path}: not JSON ({exc.msg})") from None
    return parse_violations(document, str(path))


def alert_detail(run: MonitoringRun, violations: list[dict[str, str]]) -> dict[str, Any]:
    """What a reader of the queue needs to act: which endpoint, which window, which features, and
    where the full report is."""
    return {
        "endpoint": run.endpoint,
        "run_id": run.run_id,
        "window": run.window,
        "violation_count": len(violations),
        "features": sorted({v["feature_name"] for v in violations}),
        "violations": violations[:MAX_LISTED_VIOLATIONS],
        "report": run.report_uri,
    }


def alert_entry(bus_name: str, run: MonitoringRun, violations: list[dict[str, str]]) -> dict[str, Any]:
    """The PutEvents entry; its source and detail-type are what the declared rule matches."""
    return {
        "EventBusName": bus_name,
        "Source": ALERT_SOURCE,
        "DetailType": ALERT_DETAIL_TYPE,
        "Detail": json.dumps(alert_detail(run, violations)),
    }


def accepted_event_id(response: dict[str, Any], bus_name: str) -> str:
    """PutEvents answers 200 even when it drops an entry: only `FailedEntryCount` says so."""
    entry = response["Entries"][0]
    if response.get("FailedEntryCount", 0) or "EventId" not in entry:
        reason = f"{entry.get('ErrorCode', 'Failed')}: {entry.get('ErrorMessage', 'no reason given')}"
        raise AlertNotDelivered(f"EventBridge bus {bus_name} refused the monitoring alert ({reason})")
    return entry["EventId"]


def put_alert(events: Any, entry: dict[str, Any]) -> str:
    """Put the one event; returns its id, or raises a one-line `AlertNotDelivered` naming the bus."""
    from botocore.exceptions import BotoCoreError, ClientError

    bus_name = entry["EventBusName"]
    try:
        response = events.put_events(Entries=[entry])
    except (BotoCoreError, ClientError) as exc:
        raise AlertNotDelivered(
            f"EventBridge bus {bus_name} refused the monitoring alert ({exception_line(exc)})"
        ) from None
    return accepted_event_id(response, bus_name)
