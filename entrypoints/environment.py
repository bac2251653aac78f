"""The process-environment conventions the commands honour, read in one place.

`yolo_core`'s behaviour depends on its arguments only (DESIGN.md). The entry points, the pipeline
CLI, the tests and the benchmarks read the user's conventions here and pass them in: the XDG
per-user cache folder, an exported Ultralytics settings folder, and the AWS region.
"""

from __future__ import annotations

import os
from pathlib import Path

from yolo_core import runtime


def user_cache_root() -> Path:
    """`$XDG_CACHE_HOME`, else `~/.cache` (the XDG spec: a relative value is invalid, so ignored)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"


def exported_config_dir() -> Path | None:
    """A user's own `YOLO_CONFIG_DIR` (Ultralytics' settings folder), which wins over ours."""
    exported = os.environ.get("YOLO_CONFIG_DIR", "")
    return Path(exported) if exported else None


def aws_region() -> str:
    """`$AWS_REGION`, or '' when unset: the SageMaker SDK reads AWS_DEFAULT_REGION instead."""
    return os.environ.get("AWS_REGION", "")


def configure_offline(threads: int | None = None) -> Path:
    """`yolo_core.runtime.configure_offline` with the user's conventions; returns the config folder."""
    return runtime.configure_offline(
        config_dir=exported_config_dir(), threads=threads, cache_root=user_cache_root(), region=aws_region()
    )
