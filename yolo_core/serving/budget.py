"""A server-wide budget of decoded pixels: what bounds memory, whatever the number of requests.

Per-request limits bound one request; without a budget, many requests decoded at once still add
up (each decoded 4K frame is 25 MB, each 48 Mpx one 144 MB). A request takes its pixels before
decoding and gives them back when it has been answered; while the budget is spent, requests wait
their turn in arrival order (a large one is not starved by a stream of small ones). Waiting
counts against the request's time limit like any other queue.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class PixelBudget:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"pixel budget must be positive, got {capacity}")
        self.capacity = capacity
        self.in_use = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        """Requests waiting for pixels now (shown in /metrics)."""
        return sum(1 for _, future in self._waiters if not future.done())

    @asynccontextmanager
    async def hold(self, pixels: int) -> AsyncIterator[None]:
        await self.acquire(pixels)
        try:
            yield
        finally:
            self.release(pixels)

    async def acquire(self, pixels: int) -> None:
        if pixels > self.capacity:
            raise ValueError(f"{pixels} pixels can never fit a budget of {self.capacity}")
        if not self._waiters and self.in_use + pixels <= self.capacity:
            self.in_use += pixels
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (pixels, future)
        self._waiters.append(entry)
        try:
            await future
        except asyncio.CancelledError:  # the request timed out while waiting
            if future.done() and not future.cancelled():
                self.release(pixels)  # granted just before the cancellation arrived
            else:
                if entry in self._waiters:  # `_grant` may have dropped it already
                    self._waiters.remove(entry)
                self._grant()  # it may have blocked smaller requests behind it
            raise

    def release(self, pixels: int) -> None:
        self.in_use -= pixels
        self._grant()

    def _grant(self) -> None:
        """Hand pixels to waiters in arrival order while the first one fits."""
        while self._waiters:
            pixels, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if self.in_use + pixels > self.capacity:
                return
            self._waiters.popleft()
            self.in_use += pixels
            future.set_result(None)
