"""Extract a tar archive that came from outside (a model.tar.gz) without trusting its contents.

Refused before anything is written: members that are links or devices, members whose path is
absolute or climbs out (`..`), and archives whose members add up to more than a cap (a small
.tar.gz can inflate to fill the disk). `filter="data"` then guards the extraction itself.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable
from pathlib import Path

from yolo_core.errors import UserInputError, one_line
from yolo_core.safe_paths import climbs_out

# 20 GiB: a yolo11x model.tar.gz unpacks to ~0.2 GB, so only a broken or hostile archive gets near.
DEFAULT_MAX_BYTES = 20 * 1024**3


class UnsafeArchiveError(UserInputError):
    """An archive that would write outside its folder, create links or devices, or fill the disk."""


def check_members(archive: Path, members: Iterable[tarfile.TarInfo], max_bytes: int) -> int:
    """The total size of the members, or a one-line error naming the archive and the rule broken."""
    total = 0
    for member in members:
        if not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a link or special file; refused")
        if climbs_out(member.name):
            raise UnsafeArchiveError(f"{archive}: member {member.name!r} points outside the target; refused")
        total += member.size
        if total > max_bytes:
            raise UnsafeArchiveError(
                f"{archive}: members add up to more than the cap of {max_bytes} bytes "
                f"({max_bytes / 1024**3:.3g} GiB); refused before extracting"
            )
    return total


def extract_tar(
    archive: Path, target: Path, max_bytes: int = DEFAULT_MAX_BYTES, what: str = "model archive"
) -> Path:
    """Extract `archive` into `target` after `check_members`; a broken archive is a user error."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()  # reads every header: the checks see the whole archive first
            check_members(archive, members, max_bytes)
            tar.extractall(target, members=members, filter="data")
    except UnsafeArchiveError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise UserInputError(f"{archive}: not a readable {what} ({one_line(str(exc))})") from None
    return target
