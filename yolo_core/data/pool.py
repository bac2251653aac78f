"""The process pool of the data steps, safe to start from a process that has loaded torch.

Forking is fastest, but a fork taken while torch's OpenMP threads hold a lock can leave the
children waiting on it forever (seen once late in a test session that had run inference). So a
process that has imported torch gets a forkserver pool, and the plain preprocess command, which
never loads torch, keeps the cheap fork.
"""

from __future__ import annotations

import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context


def process_pool(workers: int) -> ProcessPoolExecutor:
    method = "forkserver" if "torch" in sys.modules else "fork"
    return ProcessPoolExecutor(workers, mp_context=get_context(method))
