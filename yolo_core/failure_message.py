"""Where a container command writes its one-line failure reason, if anywhere.

SageMaker reads the reason from `<base>/output/message` (Processing) inside its container. On a
laptop that default points at /opt/ml, which the user never named: writing there would create
folders outside the paths they gave. So the default is used only where the contract tree exists.
"""

from __future__ import annotations

from pathlib import Path


def failure_message_file(base: Path, explicit: Path | None = None) -> Path | None:
    """The file to write the failure reason to: `explicit` if given, else the contract's default.

    `base` is the SageMaker tree (/opt/ml, or SAGEMAKER_BASE_DIR); its default message file
    `<base>/output/message` is used only when `base` already exists, i.e. inside a container
    or a test's stand-in tree. Returns None when no reason file should be written.
    """
    if explicit is not None:
        return explicit
    return base / "output" / "message" if base.is_dir() else None
