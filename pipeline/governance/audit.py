"""The audit trail: every guarded decision and every refusal, one JSON object per event.

On AWS each event is its own object under `s3://<bucket>/<prefix>/<audit_prefix>/<env>/`, written
once (`If-None-Match: *`) in a bucket whose versioning is on (checked, and turned on where the caller
may), so nothing recorded is lost by a later write. Locally the trail is a file of JSON lines that
is only ever appended to. `python -m pipeline audit` reads either.
"""

from __future__ import annotations

import getpass
import json
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.artifacts import split_s3_uri
from yolo_core.errors import UserInputError

REFUSED = "Refused"  # the action of an event whose command was not allowed
FIELDS = ("time", "action", "command", "environment", "version", "caller", "role", "reason")


@dataclass(frozen=True)
class Context:
    """Who acts, in which command and environment: written on every event of a command."""

    caller: str = ""
    role: str = ""
    command: str = ""
    environment: str = ""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class AuditTrail:
    """`location`: a file of JSON lines, or an s3:// prefix (with `s3`, a boto3 client)."""

    location: str
    s3: Any = None
    context: Context = Context()

    @property
    def on_s3(self) -> bool:
        return self.location.startswith("s3://")

    def bound(self, context: Context) -> AuditTrail:
        return replace(self, context=context)

    def event(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The object written: the command's context, then the entry's own fields."""
        context = {k: v for k, v in asdict(self.context).items() if v}
        caller = {"caller": f"local:{getpass.getuser()}"} if not self.context.caller else {}
        return {"time": now(), **caller, **context, **entry}

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        event = self.event(entry)
        body = json.dumps(event, sort_keys=True)
        if self.on_s3:
            self._put(body)
        else:
            path = Path(self.location)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as handle:
                handle.write(body + "\n")
        return event

    def read(self) -> list[dict[str, Any]]:
        """Every event, oldest first."""
        if self.on_s3:
            return self._read_s3()
        path = Path(self.location)
        if not path.is_file():
            return []
        try:
            return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        except ValueError:
            raise UserInputError(f"{path}: an audit line is not JSON; the file was edited") from None

    # -- S3 ------------------------------------------------------------------------------------
    def _prefix(self) -> tuple[str, str]:
        bucket, key = split_s3_uri(self.location)
        return bucket, key.rstrip("/") + "/"

    def ensure_versioned(self) -> None:
        """The trail's bucket keeps every version; turned on here where the caller may."""
        from botocore.exceptions import ClientError

        bucket, _ = self._prefix()
        status = self.s3.get_bucket_versioning(Bucket=bucket).get("Status", "")
        if status == "Enabled":
            return
        try:
            self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise UserInputError(
                f"s3://{bucket}: versioning is {status or 'off'} and could not be turned on ({code}); "
                "the audit trail needs it: aws s3api put-bucket-versioning --bucket "
                f"{bucket} --versioning-configuration Status=Enabled"
            ) from None

    def _put(self, body: str) -> None:
        self.ensure_versioned()
        bucket, prefix = self._prefix()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")  # keys sort as the events happened
        self.s3.put_object(
            Bucket=bucket,
            Key=f"{prefix}{stamp}-{uuid.uuid4().hex[:12]}.json",
            Body=body.encode(),
            ContentType="application/json",
            IfNoneMatch="*",  # written once: an event is never replaced
        )

    def _read_s3(self) -> list[dict[str, Any]]:
        bucket, prefix = self._prefix()
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", []) if item["Key"].endswith(".json")]
        return [json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in sorted(keys)]


def as_trail(log: AuditTrail | Path | str) -> AuditTrail:
    """A trail from what callers hold: a trail, or the path of a local audit file."""
    return log if isinstance(log, AuditTrail) else AuditTrail(str(log))


def s3_trail(config: Any, s3: Any) -> AuditTrail:
    """The environment's trail in its bucket: `<prefix>/<audit_prefix>/<env>/`."""
    return AuditTrail(config.s3_uri(config.governance.audit_prefix, config.name), s3)


def event_line(event: dict[str, Any]) -> str:
    """One event on one line, its fields in a fixed order (`python -m pipeline audit`)."""
    parts = [f"{name}={event.get(name, '')}" for name in FIELDS[1:]]
    return "  ".join([str(event.get("time", "")), *parts])
