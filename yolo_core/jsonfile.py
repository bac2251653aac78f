"""Read a JSON object that a user (or a job before them) wrote: the one place that turns an
unreadable, binary, malformed or non-object file into a user error naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from yolo_core.errors import UserInputError, one_line


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The file's JSON object; `what` names the file's role in the message (e.g. "model card")."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UserInputError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    except ValueError as exc:  # not UTF-8 text, or not JSON (JSONDecodeError is a ValueError)
        raise UserInputError(f"{path}: the {what} is not valid JSON ({one_line(str(exc))})") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: the {what} must be a JSON object, got {type(data).__name__}")
    return data
