"""Which code made an artifact: the package version plus the git commit when there is one.

The commit is the caller's to give: an entry point passes the one baked into its image
(`entrypoints.contract.image_commit`), the pipeline passes its checkout's (`git_commit`).
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

PACKAGE = "drone-yolo-toolkit"


def package_version() -> str:
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "0+unknown"


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the checkout this code runs from, or "unknown" outside one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def code_version(commit: str = "") -> str:
    """`<package version>+<commit[:12]>`; `commit` defaults to the checkout's."""
    return f"{package_version()}+{(commit or git_commit())[:12]}"
