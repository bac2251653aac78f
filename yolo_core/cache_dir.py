"""Private, per-user cache folders: Ultralytics' settings (and its DDP scratch scripts), ONNX exports.

A folder in the shared temp directory lets another user plant a file we later load or run (an
ONNX graph, the DDP launch script Ultralytics writes under its config folder) or read what we
wrote. So every cache lives under the user's own cache folder (`~/.cache`, or the root the
caller passes: the entry points honour `$XDG_CACHE_HOME`, see `entrypoints/environment.py`), then
`drone-yolo/`, is created with mode 0700, and a folder that belongs to someone else, or that group
or others may write to, is refused rather than used.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from yolo_core.errors import UserInputError

APP_DIR = "drone-yolo"
ULTRALYTICS = "ultralytics"  # YOLO_CONFIG_DIR: settings, fonts, and DDP/ (generated launch scripts)
ONNX = "onnx"  # ONNX Runtime exports of .pt weights, named by content hash


class UnsafeCacheDirError(UserInputError):
    """A cache folder another user owns or may write to: using it would trust their files."""


_default_root: Path | None = None


def set_default_root(root: Path | None) -> None:
    """The root `private_dir` uses when given none (`runtime.configure_offline` records the one it
    was given, so later lookups such as the ONNX cache use the same); None means `~/.cache`."""
    global _default_root
    _default_root = Path(root) if root else None


def default_root() -> Path:
    return _default_root or Path.home() / ".cache"


def private_dir(name: str = "", root: Path | None = None) -> Path:
    """`<root>/drone-yolo/<name>`, created 0700 and checked to be this user's alone."""
    app_dir = ensure_private(Path(root or default_root()) / APP_DIR)
    return ensure_private(app_dir / name) if name else app_dir


def ensure_private(path: Path) -> Path:
    """Create `path` with mode 0700 if missing (its parents as usual), then check it is private."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    check_private(path)
    return path


def _owner(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def check_private(path: Path) -> None:
    """Refuse a folder (or a link to one) that another user owns, or that group/others may write.

    One we own that others may merely read is narrowed to 0700: nothing of theirs can be in it.
    """
    if not hasattr(os, "getuid"):  # not POSIX: no owners or mode bits to check
        return
    me = os.getuid()
    link, target = path.lstat(), path.stat()
    for found in (link, target):
        if found.st_uid != me:
            raise UnsafeCacheDirError(
                f"cache folder {path} is owned by {_owner(found.st_uid)}, not by {_owner(me)}: "
                "refusing to use it (remove it, or set XDG_CACHE_HOME to a folder of your own)"
            )
    if not stat.S_ISDIR(target.st_mode):
        raise UnsafeCacheDirError(f"cache folder {path} is not a folder")
    mode = stat.S_IMODE(target.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeCacheDirError(
            f"cache folder {path} (owner {_owner(target.st_uid)}) is writable by group or others "
            f"(mode {mode:04o}): refusing to use it (chmod 700 it, or remove it)"
        )
    if mode & 0o077:
        os.chmod(path, 0o700)
