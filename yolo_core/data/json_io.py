"""JSON files that people read and machines write fast: one list element per line.

`json.dumps(indent=...)` falls back to the pure-Python encoder, which took longer than the
statistics of a whole dataset; encoding each element with the C encoder and putting it on its
own line keeps manifests and reports both quick to write and easy to grep and diff.
"""

from __future__ import annotations

import json
from pathlib import Path


def dumps_by_line(document: dict) -> str:
    """A JSON object with each top-level key, and each element of a top-level list, on a line."""
    parts = []
    for key, value in document.items():
        if isinstance(value, list) and value:
            inner = ",\n  ".join(json.dumps(element) for element in value)
            parts.append(f"{json.dumps(key)}: [\n  {inner}\n ]")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "{\n " + ",\n ".join(parts) + "\n}\n"


def write_json(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_by_line(document))
    return path
