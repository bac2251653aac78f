"""SIGTERM handling for managed spot training.

When SageMaker reclaims a spot instance it sends SIGTERM, waits a short while, then kills the
container. Stopping in the middle of an optimizer step would leave a half-updated model, so the
handler only raises a flag; the trainer looks at it at safe points (after each batch, between
epochs), writes a checkpoint atomically and leaves with `TrainingInterrupted`. A second signal
means "now": it exits at once (the checkpoints on disk are whole, thanks to atomic writes).
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from types import FrameType

LOG = logging.getLogger(__name__)
EXIT_CODE_SIGTERM = 128 + signal.SIGTERM


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal; `checkpoint` is what the next start resumes from."""

    def __init__(self, signum: int, epoch: int, checkpoint: Path | None) -> None:
        where = f"checkpoint {checkpoint.name} saved" if checkpoint else "no checkpoint yet"
        super().__init__(
            f"training interrupted by {signal.Signals(signum).name} in epoch {epoch + 1}; {where}; "
            "the next start resumes from the checkpoint folder"
        )
        self.signum = signum
        self.checkpoint = checkpoint
        self.exit_code = 128 + signum


class StopSignal:
    """Installs handlers for SIGTERM (and SIGINT) that record the request instead of dying."""

    def __init__(self, signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
        self.signals = signals
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            LOG.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(128 + signum)  # noqa: SLF001 - an immediate exit is what a second signal asks for
        self.received = signum
        LOG.warning("%s received: saving a checkpoint at the next safe point", signal.Signals(signum).name)

    def __enter__(self) -> StopSignal:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
