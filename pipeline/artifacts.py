"""Where the local runner keeps step outputs: a folder, or an S3 prefix (real S3 or moto).

Each step's outputs live under `<root>/<step>/<cache key>/<output>/`, next to a `_SUCCESS.json`
manifest written last, so a half-written step is never mistaken for a cached one. An object key
that would land outside the local folder (`..`, an absolute path) is refused before anything of
that prefix is downloaded.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from yolo_core.errors import UserInputError
from yolo_core.safe_paths import join_inside

MANIFEST = "_SUCCESS.json"


class ArtifactStore(Protocol):
    """The operations the runner needs; locations are plain strings (a path or an s3:// URI)."""

    root: str

    def location(self, *parts: str) -> str: ...

    def read_manifest(self, step: str, key: str) -> dict[str, Any] | None: ...

    def write_manifest(self, step: str, key: str, manifest: dict[str, Any]) -> None: ...

    def put_dir(self, local: Path, *parts: str) -> str: ...

    def get_dir(self, location: str, local: Path) -> Path: ...


@dataclass
class LocalArtifactStore:
    folder: Path

    @property
    def root(self) -> str:
        return str(self.folder)

    def location(self, *parts: str) -> str:
        return str(self.folder.joinpath(*parts))

    def read_manifest(self, step: str, key: str) -> dict[str, Any] | None:
        path = self.folder / step / key / MANIFEST
        return json.loads(path.read_text()) if path.is_file() else None

    def write_manifest(self, step: str, key: str, manifest: dict[str, Any]) -> None:
        path = self.folder / step / key / MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)

    def put_dir(self, local: Path, *parts: str) -> str:
        target = self.folder.joinpath(*parts)
        if target.exists():
            shutil.rmtree(target)  # a step that died before its manifest left this behind
        shutil.copytree(local, target)
        return str(target)

    def get_dir(self, location: str, local: Path) -> Path:
        shutil.copytree(location, local, dirs_exist_ok=True)
        return local


def split_s3_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise UserInputError(f"{uri!r} is not an s3://bucket/prefix URI")
    return parsed.netloc, parsed.path.lstrip("/")


def iter_s3_objects(client: Any, uri: str) -> Iterator[dict[str, Any]]:
    """Every object under an S3 prefix (treated as a folder)."""
    bucket, prefix = split_s3_uri(uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def download_s3_prefix(client: Any, uri: str, local: Path) -> Path:
    """Every object under the prefix into `local`, at its key's place; bad keys fail before any copy."""
    bucket, prefix = split_s3_uri(uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    keys = [item["Key"] for item in iter_s3_objects(client, uri)]
    if not keys:
        raise UserInputError(f"{uri}: no objects under this S3 prefix")
    targets = {
        key: join_inside(local, key[len(prefix) :], f"s3://{bucket}/{key}: object key")
        for key in keys
        if not key.endswith("/")  # a zero-byte "folder" made by the console holds nothing
    }
    for key, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))
    return local


def upload_dir(client: Any, local: Path, uri: str) -> str:
    bucket, prefix = split_s3_uri(uri)
    for path in sorted(p for p in Path(local).rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix.rstrip('/')}/{path.relative_to(local).as_posix()}")
    return uri


@dataclass
class S3ArtifactStore:
    uri: str
    client: Any

    @property
    def root(self) -> str:
        return self.uri.rstrip("/")

    def location(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def read_manifest(self, step: str, key: str) -> dict[str, Any] | None:
        bucket, key_prefix = split_s3_uri(self.location(step, key, MANIFEST))
        try:
            body = self.client.get_object(Bucket=bucket, Key=key_prefix)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return json.loads(body)

    def write_manifest(self, step: str, key: str, manifest: dict[str, Any]) -> None:
        bucket, object_key = split_s3_uri(self.location(step, key, MANIFEST))
        body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        self.client.put_object(Bucket=bucket, Key=object_key, Body=body)

    def put_dir(self, local: Path, *parts: str) -> str:
        return upload_dir(self.client, local, self.location(*parts))

    def get_dir(self, location: str, local: Path) -> Path:
        return download_s3_prefix(self.client, location, local)


def open_store(where: str, s3_client_factory: Any) -> ArtifactStore:
    """`s3://bucket/prefix` or a folder path."""
    if where.startswith("s3://"):
        split_s3_uri(where)
        return S3ArtifactStore(where, s3_client_factory())
    folder = Path(where).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return LocalArtifactStore(folder)
