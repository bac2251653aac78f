"""The serving entry point run as a user runs it, for the tests of what it refuses at start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def serve_until_exit(model_dir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m entrypoints.serve` on `model_dir`, on any free port, until it exits (or 120 s)."""
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.serve", "--model-dir", str(model_dir), "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
