"""Which version is live where, per environment: an append-only list of deployments plus the
latest staging report, kept as one JSON document in a folder (local) or under the environment's
S3 prefix (AWS). What "previous" means is `decisions.previous_live`, not decided here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.deploy.decisions import STOPPED, StagingReport
from yolo_core.errors import UserInputError

EMPTY: dict[str, Any] = {"deployments": [], "staging_report": None}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class History:
    """`location`: a folder, or an s3:// URI (with `s3`, a boto3 client)."""

    location: str
    s3: Any = None

    def _key(self) -> tuple[str, str]:
        from pipeline.artifacts import split_s3_uri

        bucket, key = split_s3_uri(self.location)
        return bucket, f"{key}/deployments.json"

    def read(self) -> dict[str, Any]:
        if self.location.startswith("s3://"):
            bucket, key = self._key()
            try:
                text = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            except self.s3.exceptions.NoSuchKey:
                return json.loads(json.dumps(EMPTY))
        else:
            path = Path(self.location) / "deployments.json"
            if not path.is_file():
                return json.loads(json.dumps(EMPTY))
            text = path.read_text()
        try:
            return json.loads(text)
        except ValueError:
            raise UserInputError(f"{self.location}/deployments.json: not JSON; fix or remove it") from None

    def write(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        if self.location.startswith("s3://"):
            bucket, key = self._key()
            self.s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
        else:
            path = Path(self.location) / "deployments.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(path)

    def record(self, stage: str, **entry: Any) -> dict[str, Any]:
        data = self.read()
        item = {"stage": stage, "time": now(), **entry}
        data["deployments"].append(item)
        self.write(data)
        return item

    def live(self, stage: str) -> dict[str, Any] | None:
        entries = [e for e in self.read()["deployments"] if e["stage"] == stage]
        if not entries or entries[-1].get("action") == STOPPED:
            return None
        return entries[-1]

    def record_stopped(self, stage: str, entry: dict[str, Any]) -> None:
        """`entry`'s server was stopped: the history says so, rather than list it as live."""
        self.record(stage, action=STOPPED, version=entry.get("version"), url=entry.get("url"))

    def save_report(self, report: StagingReport) -> None:
        data = self.read()
        data["staging_report"] = report.to_dict()
        self.write(data)

    def report(self) -> StagingReport | None:
        raw = self.read().get("staging_report")
        return StagingReport.from_dict(raw) if raw else None

    def save_monitoring_sources(self, version: str, sources: dict[str, str]) -> None:
        """Where `version`'s monitoring references are (its registry's URLs), for a rollback to
        it, which reads no registry, to put them back in place."""
        data = self.read()
        data.setdefault("monitoring_sources", {})[str(version)] = dict(sources)
        self.write(data)

    def monitoring_sources(self, version: str) -> dict[str, str] | None:
        return self.read().get("monitoring_sources", {}).get(str(version))
