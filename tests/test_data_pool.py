"""The data steps' process pool: its workers reuse large freed buffers instead of faulting them in again."""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from yolo_core.data.pool import keep_large_buffers, process_pool

FRAMES = 10


def _page_faults_per_frame(_: int) -> float:
    """Minor page faults per 1080p frame decoded and cut into eight encoded 640 px tiles."""
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    pixels = np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", cv2.GaussianBlur(pixels, (5, 5), 0))[1]

    def preprocess_one_frame() -> None:
        frame = cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)
        for y in (0, 440):
            for x in (0, 426, 852, 1278):
                cv2.imencode(".jpg", frame[y : y + 640, x : x + 640], [cv2.IMWRITE_JPEG_QUALITY, 95])

    preprocess_one_frame()  # the first frame faults its buffers in
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(FRAMES):
        preprocess_one_frame()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / FRAMES


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_pool_workers_reuse_frame_buffers_without_page_faults() -> None:
    # With glibc's defaults this work faults ~2,000 pages in again for every frame.
    with process_pool(1) as pool:
        faults = pool.submit(_page_faults_per_frame, 0).result(timeout=120)
    assert faults < 100, f"{faults:.0f} page faults per frame"


def test_keep_large_buffers_reports_whether_it_applied() -> None:
    with process_pool(1) as pool:  # in a worker: the test process keeps its allocator's defaults
        applied = pool.submit(keep_large_buffers).result(timeout=120)
    assert applied is sys.platform.startswith("linux")


START_METHOD_PROBE = """
import sys, types
from yolo_core.data import pool
print(pool.start_method())
sys.modules[sys.argv[1]] = sys.modules.get(sys.argv[1]) or types.ModuleType(sys.argv[1])
print(pool.start_method())
"""


@pytest.mark.parametrize("module", ["torch", "ipykernel"])
def test_a_process_with_threads_that_hold_locks_gets_a_forkserver_pool(module: str) -> None:
    """A fork copies a lock another thread held (torch's OpenMP pool; a notebook kernel's threads,
    OpenCV's after a cv2 call there) into the workers, which then hang; such a process must not fork.
    A fresh interpreter, since the test session's own modules vary with the tests run before."""
    probe = subprocess.run(
        [sys.executable, "-c", START_METHOD_PROBE, module], capture_output=True, text=True, timeout=120
    )
    assert probe.stdout.split() == ["fork", "forkserver"], probe.stderr
