"""Content fingerprints for the local runner's step cache.

A step's cache key is a hash of what can change its outputs: its inputs (the raw data's content,
or the upstream step's own cache key), its resolved arguments and hyperparameters, and the code
that runs it (the entrypoint module, the contract and `yolo_core`; or the image ID in Docker mode).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipeline.artifacts import iter_s3_objects

REPO_ROOT = Path(__file__).resolve().parent.parent
_CHUNK = 1 << 20


def digest_json(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digest(folder: Path) -> str:
    """Hash of every file's relative path and bytes under `folder` (a file hashes alone)."""
    folder = Path(folder)
    if folder.is_file():
        return _file_digest(folder)
    entries = [
        (path.relative_to(folder).as_posix(), _file_digest(path))
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    ]
    return digest_json(entries)


def s3_digest(client: Any, uri: str) -> str:
    """Hash of the keys, sizes and ETags under an S3 prefix (S3 already hashed the bytes)."""
    return digest_json([(o["Key"], o["Size"], o.get("ETag", "")) for o in iter_s3_objects(client, uri)])


@lru_cache(maxsize=16)
def code_digest(entrypoint: str) -> str:
    """The code a step runs locally: its entrypoint module, the contract and the core library."""
    sources = [REPO_ROOT / "entrypoints" / f"{entrypoint}.py", REPO_ROOT / "entrypoints" / "contract.py"]
    package = REPO_ROOT / "entrypoints" / entrypoint
    parts = [tree_digest(p) for p in sources if p.exists()]
    if package.is_dir():
        parts.append(tree_digest(package))
    parts.append(tree_digest(REPO_ROOT / "yolo_core"))
    return digest_json(parts)
