"""Data capture: requests and responses as JSON lines in SageMaker's data-capture format.

Each line has the fields SageMaker writes to S3 (`captureData.endpointInput/endpointOutput` with
`observedContentType`, `mode`, `data`, `encoding`; `eventMetadata` with `eventId`,
`inferenceTime`; `eventVersion`), so the monitor reads local captures and S3 captures alike.
Files go to `<folder>/YYYY/MM/DD/HH/` like SageMaker's hourly prefixes. Lines are written by one
background thread (request handlers never wait on the disk) and flushed one by one, so a crash
loses at most the line being written. The queue in front of that thread is bounded in bytes: when
the disk cannot keep up, exchanges are dropped and counted (`lines_dropped`, in /metrics) rather
than held in memory until the server runs out of it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import queue
import random
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

EVENT_VERSION = "0"
DEFAULT_MAX_QUEUED_BYTES = 64 * 1024 * 1024
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CapturedExchange:
    input_type: str
    input_data: bytes
    output_type: str
    output_data: bytes
    inference_id: str | None = None

    @property
    def size(self) -> int:
        return len(self.input_data) + len(self.output_data)


def _payload(content_type: str, data: bytes, mode: str) -> dict[str, str]:
    """JSON stays readable text (encoding JSON); anything else, images included, is BASE64."""
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            return {
                "observedContentType": content_type,
                "mode": mode,
                "data": data.decode("utf-8"),
                "encoding": "JSON",
            }
        except UnicodeDecodeError:
            pass
    return {
        "observedContentType": content_type,
        "mode": mode,
        "data": base64.b64encode(data).decode("ascii"),
        "encoding": "BASE64",
    }


def capture_record(exchange: CapturedExchange, when: datetime) -> dict:
    metadata = {
        "eventId": str(uuid.uuid4()),
        "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    }
    if exchange.inference_id:
        metadata["inferenceId"] = exchange.inference_id
    return {
        "captureData": {
            "endpointInput": _payload(exchange.input_type, exchange.input_data, "INPUT"),
            "endpointOutput": _payload(exchange.output_type, exchange.output_data, "OUTPUT"),
        },
        "eventMetadata": metadata,
        "eventVersion": EVENT_VERSION,
    }


class DataCapture:
    def __init__(
        self,
        folder: Path,
        sampling_percentage: float = 100.0,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
    ) -> None:
        if not 0 <= sampling_percentage <= 100:
            raise ValueError(f"capture sampling percentage must be 0-100, got {sampling_percentage}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sampling_percentage = sampling_percentage
        self.max_queued_bytes = max_queued_bytes
        self._queue: queue.SimpleQueue[tuple[CapturedExchange, datetime] | None] = queue.SimpleQueue()
        self._queued_bytes = 0  # of exchanges submitted and not yet written
        self._file: IO[str] | None = None
        self._file_hour: str | None = None
        self._name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._lock = threading.Lock()  # the file and the written/failed counters
        self._queue_lock = threading.Lock()  # the queued bytes and the dropped counter
        self.lines_written = 0
        self.lines_failed = 0
        self.lines_dropped = 0  # the queue was full: the disk could not keep up
        self._writer = threading.Thread(target=self._drain, name="data-capture", daemon=True)
        self._writer.start()

    def submit(self, exchange: CapturedExchange) -> None:
        """Queue one exchange (sampled); returns at once, dropping it when the queue is full."""
        if random.uniform(0, 100) >= self.sampling_percentage:
            return
        with self._queue_lock:
            if self._queued_bytes + exchange.size > self.max_queued_bytes:
                self.lines_dropped += 1
                return
            self._queued_bytes += exchange.size
        self._queue.put((exchange, datetime.now(UTC)))

    def close(self) -> None:
        """Write what is queued, then close the file: part of the SIGTERM drain."""
        self._queue.put(None)
        self._writer.join()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def _drain(self) -> None:
        while (item := self._queue.get()) is not None:
            self._write(*item)
            with self._queue_lock:  # only now is its memory free
                self._queued_bytes -= item[0].size

    def _write(self, exchange: CapturedExchange, when: datetime) -> None:
        line = json.dumps(capture_record(exchange, when), separators=(",", ":"))
        with self._lock:
            try:
                handle = self._file_for(when)
                handle.write(line + "\n")
                handle.flush()
            except OSError:  # a full disk must not take inference down with it
                self.lines_failed += 1
                log.exception("data capture: could not write to %s", self.folder)
                return
            self.lines_written += 1

    def _file_for(self, when: datetime) -> IO[str]:
        hour = when.strftime("%Y/%m/%d/%H")
        if self._file is None or hour != self._file_hour:
            if self._file is not None:
                self._file.close()
            folder = self.folder / hour
            folder.mkdir(parents=True, exist_ok=True)
            self._file = open(folder / self._name, "a", encoding="utf-8")  # noqa: SIM115 - kept open across lines
            self._file_hour = hour
        return self._file
