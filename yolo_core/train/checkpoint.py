"""Spot-safe checkpoint files: atomic writes, the last two kept, a corrupt newest one skipped.

A spot instance can be stopped at any instruction, and SageMaker copies the checkpoint folder to
S3 while training writes it. So a checkpoint is never written in place: it goes to a temporary
file in the same folder, is flushed to disk, and is renamed over its final name (a rename within
one file system is atomic). Two epochs are kept, so that a newest file damaged in transit (or by
a bug) still leaves one to resume from.

Names: `epoch-0007.pt` after 7 completed epochs; `epoch-0007.partial.pt` is a snapshot taken in
the middle of epoch 8 when SIGTERM arrived (it resumes at epoch 8, with the weights reached).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)
KEEP = 2
_NAME = re.compile(r"^epoch-(\d{4,})(\.partial)?\.pt$")


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (the directory entry itself is data)."""
    with contextlib.suppress(OSError):  # some file systems can't open directories
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def commit_file(temp: Path, final: Path) -> Path:
    """Flush a finished temporary file and rename it over `final`, atomically."""
    with open(temp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, final)
    fsync_dir(final.parent)
    return final


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_path(path)
    temp.write_bytes(data)
    return commit_file(temp, path)


def atomic_copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_path(target)
    shutil.copyfile(source, temp)
    return commit_file(temp, target)


def load_checkpoint_file(path: Path) -> dict[str, Any]:
    """Load and sanity-check an Ultralytics training checkpoint; raise ValueError if unusable."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - truncated zip, bad pickle, I/O error: all "corrupt"
        raise ValueError(f"{path.name}: cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("ema") is None or "epoch" not in ckpt:
        raise ValueError(f"{path.name}: not a resumable training checkpoint")
    if not isinstance(ckpt.get("train_args"), dict):
        raise ValueError(f"{path.name}: has no training arguments")
    return ckpt


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    completed_epochs: int
    partial: bool
    data: dict[str, Any]


class CheckpointStore:
    """The checkpoint files of one run, in its `weights/` folder."""

    def __init__(self, weights_dir: Path, keep: int = KEEP) -> None:
        self.dir = Path(weights_dir)
        self.keep = keep

    @property
    def best_path(self) -> Path:
        return self.dir / "best.pt"

    @property
    def final_path(self) -> Path:
        """best.pt stripped of optimizer state and validated: what gets exported."""
        return self.dir / "final.pt"

    def staging_path(self, role: str) -> Path:
        return self.dir / f".staging-{role}.pt"

    def epoch_path(self, completed_epochs: int, partial: bool = False) -> Path:
        return self.dir / f"epoch-{completed_epochs:04d}{'.partial' if partial else ''}.pt"

    def files(self) -> list[Path]:
        """Checkpoint files, newest first (a partial snapshot is newer than its epoch's end)."""
        if not self.dir.is_dir():
            return []
        found = []
        for path in self.dir.iterdir():
            match = _NAME.match(path.name)
            if match:
                found.append(((int(match.group(1)), bool(match.group(2))), path))
        return [path for _, path in sorted(found, reverse=True)]

    def commit(self, staged: Path, completed_epochs: int, partial: bool = False) -> Path:
        """Move a staged checkpoint to its epoch name and drop all but the newest `keep`."""
        final = commit_file(staged, self.epoch_path(completed_epochs, partial))
        self.prune()
        return final

    def commit_best(self, staged: Path) -> Path:
        return commit_file(staged, self.best_path)

    def prune(self) -> None:
        for old in self.files()[self.keep :]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()

    def newest(self) -> Path | None:
        files = self.files()
        return files[0] if files else None

    def newest_good(self) -> Checkpoint | None:
        """The newest checkpoint that loads; a corrupt one is renamed `*.corrupt` and skipped."""
        for path in self.files():
            try:
                data = load_checkpoint_file(path)
            except ValueError as exc:
                quarantined = path.with_name(path.name + ".corrupt")
                LOG.warning("checkpoint %s is unusable (%s); falling back to an older one", path, exc)
                with contextlib.suppress(OSError):
                    os.replace(path, quarantined)
                continue
            match = _NAME.match(path.name)
            assert match  # files() only lists matching names
            return Checkpoint(path, int(match.group(1)), bool(match.group(2)), data)
        return None

    def clear_staging(self) -> None:
        for path in self.dir.glob(".staging-*.pt"):
            path.unlink(missing_ok=True)
        for path in self.dir.glob(".*.tmp-*"):
            path.unlink(missing_ok=True)
