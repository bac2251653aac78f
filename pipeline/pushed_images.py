"""The image tag `make push` last pushed, per registry: what `upsert` uses unless told otherwise.

`make push` pushes `<version>-<commit>` (never `latest`: ECR tags are immutable), so a definition
naming `latest` would point at nothing. push.py records the tag here after a push, and `upsert`
takes it for the config's registry; `--image-tag` (or `-p ...ImageTag=` at `start`) overrides it.
"""

from __future__ import annotations

import json
from pathlib import Path

from yolo_core.jsonfile import read_json_object

RECORD = Path(__file__).resolve().parent.parent / ".pipeline" / "pushed-images.json"


def record_push(registry: str, tag: str, record: Path = RECORD) -> None:
    pushed = read_json_object(record, "pushed-images record") if record.is_file() else {}
    pushed[registry.rstrip("/")] = tag
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(pushed, indent=2, sort_keys=True) + "\n")


def pushed_tag(registry: str, record: Path = RECORD) -> str:
    """The tag last pushed to `registry`, or '' if none was."""
    if not record.is_file():
        return ""
    return str(read_json_object(record, "pushed-images record").get(registry.rstrip("/"), ""))
