"""Dynamic micro-batching: concurrent requests with the same options share one forward pass.

A batch closes when it holds `max_batch_size` images or when its oldest request has waited
`max_wait_s`, whichever comes first; under load the oldest request has usually waited longer
than that already, so a full queue adds no wait at all. The model runs in one worker thread, so
the event loop keeps answering `/ping` and reading new requests while a batch runs.
`max_batch_size=1` turns batching off (one request per forward pass), for comparison.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from yolo_core.serving.errors import RequestError

Result = TypeVar("Result")
RunBatch = Callable[[list[np.ndarray], Hashable], list]


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


@dataclass(eq=False)  # compared by identity: its arrays have no useful ==
class _Job:
    images: list[np.ndarray]
    key: Hashable
    future: asyncio.Future
    queued_at: float


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

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="micro-batcher")

    async def stop(self) -> None:
        """Finish every queued request, then stop: part of draining on SIGTERM."""
        self._closing = True
        self._arrived.set()
        if self._worker is not None:
            await self._worker
        self._executor.shutdown(wait=True)

    async def submit(self, images: list[np.ndarray], key: Hashable) -> BatchResult:
        """Queue one request's images; `key` groups requests that may share a pass."""
        if self._closing:
            raise RequestError(503, "server is shutting down; send the request to another instance")
        queued = sum(len(job.images) for job in self._pending if not job.future.done())
        if queued + len(images) > self.max_queued_images:
            raise RequestError(503, f"server is busy ({queued} images queued); retry shortly")
        job = _Job(images, key, asyncio.get_running_loop().create_future(), time.monotonic())
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
        try:
            outputs = await loop.run_in_executor(self._executor, self._run_batch, images, jobs[0].key)
        except Exception as exc:  # noqa: BLE001 - every waiting request gets the failure
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
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
