"""cfn-lint over rendered templates, from the test environment's own install: every template the
project renders is linted the same way."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path


def assert_cfn_lint_clean(paths: Iterable[Path]) -> None:
    lint = Path(sys.executable).parent / "cfn-lint"
    done = subprocess.run([str(lint), *map(str, paths)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
