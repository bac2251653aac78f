"""Relative paths that come from input (an S3 key, a COCO `file_name`, an archive member).

Joined to a local folder, `../x` or `/etc/x` would read or write outside it, so such a path is bad
input, reported and never followed. The check is on the text alone (no file system access), so it
gives the same answer before a file exists and on every machine.
"""

from __future__ import annotations

import re
from pathlib import Path

from yolo_core.errors import UserInputError

_SEPARATORS = re.compile(r"[\\/]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def climbs_out(relative: str) -> bool:
    """True for an absolute path (POSIX, Windows drive or UNC) or one with a `..` component."""
    if relative.startswith(("/", "\\")) or _DRIVE.match(relative):
        return True
    return ".." in _SEPARATORS.split(relative)


def join_inside(root: Path, relative: str, what: str) -> Path:
    """`root / relative`, or a one-line UserInputError naming `what` when it would leave `root`."""
    if not relative or climbs_out(relative):
        raise UserInputError(f"{what} {relative!r} points outside {root}; refusing to follow it")
    return Path(root) / relative
