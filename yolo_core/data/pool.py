"""The process pool of the data steps, safe to start from a process that has loaded torch.

Forking is fastest, but a fork taken while torch's OpenMP threads hold a lock can leave the
children waiting on it forever (seen once late in a test session that had run inference). So a
process that has imported torch gets a forkserver pool, and the plain preprocess command, which
never loads torch, keeps the cheap fork.

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


def process_pool(workers: int) -> ProcessPoolExecutor:
    method = "forkserver" if "torch" in sys.modules else "fork"
    return ProcessPoolExecutor(workers, mp_context=get_context(method), initializer=keep_large_buffers)
