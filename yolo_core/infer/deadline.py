"""When long inference must stop: a time limit checked between batches, not only awaited.

A caller that stops waiting (a server's request timeout) does not stop the work it started: the
batches go on in the worker, and every other request waits behind them. Work that takes a
`Deadline` checks it between batches and raises `DeadlineExceeded`, so that at most one batch
runs past the limit. `abandoned` ends the work earlier still, once nobody waits for its result.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


class DeadlineExceeded(RuntimeError):
    """The work passed its time limit (or its caller left) and was stopped between batches."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(f"did not finish within {limit_s:g} s")
        self.limit_s = limit_s


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic() past which the work stops
    limit_s: float  # the limit as the caller states it, for the message
    abandoned: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds, seconds)

    def expired(self) -> bool:
        return self.abandoned.is_set() or time.monotonic() >= self.at

    def check(self) -> None:
        """Raise `DeadlineExceeded` if the work must stop; called between batches."""
        if self.expired():
            raise DeadlineExceeded(self.limit_s)
