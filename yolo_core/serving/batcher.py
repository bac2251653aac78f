"""Dynamic micro-batching: concurrent requests with the same options share one forward pass.

A batch closes when it holds `max_batch_size` images or when its oldest request has waited
`max_wait_s`, whichever comes first; under load the oldest request has usually waited longer
than that already, so a full queue adds no wait at all. The model runs in one worker thread, so
the event loop keeps answering `/ping` and reading new requests while a batch runs.
`max_batch_size=1` turns batching off (one request per forward pass), for comparison.

Each request may bring a `Deadline`; a batch gets the latest of its requests' deadlines, and is
abandoned as soon as none of its requests waits any more (all timed out), so `run_batch`, which
checks it between forward passes, stops work nobody will read. How long the running batch has
run (`running_for`) is what `/ping` watches to report a stuck worker.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from yolo_core.infer.deadline import Deadline, DeadlineExceeded
from yolo_core.serving.errors import RequestError

Result = TypeVar("Result")
RunBatch = Callable[[list[np.ndarray], Hashable, Deadline], list]


@dataclass
class BatchResult(Generic[Result]):
    outputs: list[Result]  # one per image of the request
    batch_images: int  # images in the forward pass this request shared
    batch_requests: int  # requests in it


@dataclass
class BatcherStats:
    requests: int = 0
    batches: int = 0
    images: int = 0
    largest_batch: int = 0
    batch_size_counts: dict[int, int] = field(default_factory=dict)
    stopped_at_deadline: int = 0  # batches stopped between forward passes, past their deadline


@dataclass(eq=False)  # compared by identity: its arrays have no useful ==
class _Job:
    images: list[np.ndarray]
    key: Hashable
    future: asyncio.Future
    queued_at: float
    deadline: Deadline | None = None


class MicroBatcher:
    def __init__(
        self, run_batch: RunBatch, max_batch_size: int, max_wait_s: float, max_queued_images: int
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max(0.0, max_wait_s)
        self.max_queued_images = max_queued_images
        self.stats = BatcherStats()
        self._pending: list[_Job] = []
        self._arrived = asyncio.Event()
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._worker: asyncio.Task | None = None
        self._running_since: float | None = None

    @property
    def queued_images(self) -> int:
        return sum(len(job.images) for job in self._pending if not job.future.done())

    def running_for(self) -> float:
        """Seconds the batch now in the model has run; 0 when the worker is idle."""
        started = self._running_since
        return 0.0 if started is None else time.monotonic() - started

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="micro-batcher")

    async def stop(self) -> None:
        """Finish every queued request, then stop: part of draining on SIGTERM."""
        self._closing = True
        self._arrived.set()
        if self._worker is not None:
            await self._worker
        self._executor.shutdown(wait=True)

    async def submit(
        self, images: list[np.ndarray], key: Hashable, deadline: Deadline | None = None
    ) -> BatchResult:
        """Queue one request's images; `key` groups requests that may share a pass. Raises
        `DeadlineExceeded` if its batch was stopped at the deadline."""
        if self._closing:
            raise RequestError(503, "server is shutting down; send the request to another instance")
        queued = self.queued_images
        if queued + len(images) > self.max_queued_images:
            raise RequestError(503, f"server is busy ({queued} images queued); retry shortly")
        job = _Job(images, key, asyncio.get_running_loop().create_future(), time.monotonic(), deadline)
        self._pending.append(job)
        self._arrived.set()
        return await job.future

    async def _work(self) -> None:
        while True:
            while not self._pending:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
            await self._wait_for_company()
            jobs = self._take_batch()
            if jobs:
                await self._run(jobs)

    async def _wait_for_company(self) -> None:
        """Wait until the batch is full or its oldest request has waited `max_wait_s`."""
        deadline = self._pending[0].queued_at + self.max_wait_s
        while (
            not self._closing and self._images_of(self._pending, self._pending[0].key) < self.max_batch_size
        ):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    @staticmethod
    def _images_of(jobs: list[_Job], key: Hashable) -> int:
        return sum(len(job.images) for job in jobs if job.key == key)

    def _take_batch(self) -> list[_Job]:
        """The oldest request and the next ones with its key, up to `max_batch_size` images."""
        self._pending = [job for job in self._pending if not job.future.done()]  # timed out: skip
        if not self._pending:
            return []
        key = self._pending[0].key
        taken: list[_Job] = []
        images = 0
        for job in self._pending:
            if job.key != key:
                continue
            if taken and images + len(job.images) > self.max_batch_size:
                break
            taken.append(job)
            images += len(job.images)
        self._pending = [job for job in self._pending if job not in taken]
        return taken

    async def _run(self, jobs: list[_Job]) -> None:
        images = [image for job in jobs for image in job.images]
        loop = asyncio.get_running_loop()
        deadline = _batch_deadline(jobs)
        self._running_since = time.monotonic()
        try:
            outputs = await loop.run_in_executor(
                self._executor, self._run_batch, images, jobs[0].key, deadline
            )
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure
            self.stats.stopped_at_deadline += isinstance(exc, DeadlineExceeded)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        finally:
            self._running_since = None
        self._record(len(jobs), len(images))
        start = 0
        for job in jobs:
            end = start + len(job.images)
            if not job.future.done():
                job.future.set_result(BatchResult(outputs[start:end], len(images), len(jobs)))
            start = end

    def _record(self, requests: int, images: int) -> None:
        stats = self.stats
        stats.requests += requests
        stats.batches += 1
        stats.images += images
        stats.largest_batch = max(stats.largest_batch, images)
        stats.batch_size_counts[images] = stats.batch_size_counts.get(images, 0) + 1


def _batch_deadline(jobs: list[_Job]) -> Deadline:
    """The latest deadline of the batch's requests, abandoned once none of them waits any more."""
    limits = [job.deadline for job in jobs if job.deadline is not None]
    if len(limits) < len(jobs):  # a request without a limit: the batch has none either
        deadline = Deadline(math.inf, math.inf)
    else:
        deadline = max(limits, key=lambda d: d.at)
        deadline = Deadline(deadline.at, deadline.limit_s)  # its own `abandoned` event

    def on_done(_: asyncio.Future) -> None:
        if all(job.future.done() for job in jobs):
            deadline.abandoned.set()

    for job in jobs:
        job.future.add_done_callback(on_done)
    return deadline
