"""The process pool of the data steps, safe to start from a process that has loaded torch.

Forking is fastest, but a fork copies only the calling thread: a lock another thread held at that
moment stays held in the child forever, and its workers hang. Two kinds of process have threads
that do that: one that has loaded torch (its OpenMP pool; seen late in a test session that had run
inference) and a Jupyter kernel (its ZeroMQ threads, and OpenCV's pool after any cv2 call in a
cell: the experiment notebook's dataset cell hung). Those get a forkserver pool, whose server starts
from a clean process; the plain preprocess command, which never loads torch, keeps the cheap fork
(numpy's and OpenCV's idle pools at import are safe to fork, as every CI run shows).

Each worker keeps large freed buffers for reuse (`keep_large_buffers`): a decoded 1080p frame is
a 6 MB array, and with glibc's defaults every frame's buffers went back to the kernel and came
back as ~2,100 fresh pages, each a page fault: 8 ms of kernel time a frame on the 2-core VM, a
fifth of the whole per-frame work (measured with `getrusage`: 2,100 minor faults a frame before,
none after).
"""

from __future__ import annotations

import ctypes
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

# glibc's mallopt parameters (malloc.h) and the values the workers use: blocks up to 64 MB (a
# 4K frame is 25 MB) come from the heap, and up to 128 MB of free heap is kept, not trimmed.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
WORKER_MMAP_THRESHOLD = 64 << 20
WORKER_TRIM_THRESHOLD = 128 << 20


def keep_large_buffers() -> bool:
    """Make this process's allocator reuse large freed blocks; False where it is not glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): keep the allocator's defaults
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    mmap_set = mallopt(_M_MMAP_THRESHOLD, WORKER_MMAP_THRESHOLD)
    return bool(mmap_set and mallopt(_M_TRIM_THRESHOLD, WORKER_TRIM_THRESHOLD))


UNSAFE_TO_FORK = ("torch", "ipykernel")  # modules whose threads can hold a lock across a fork


def start_method() -> str:
    """ "forkserver" in a process that has loaded torch or is a Jupyter kernel, else "fork"."""
    return "forkserver" if any(name in sys.modules for name in UNSAFE_TO_FORK) else "fork"


def process_pool(workers: int) -> ProcessPoolExecutor:
    context = get_context(start_method())
    return ProcessPoolExecutor(workers, mp_context=context, initializer=keep_large_buffers)
