"""Shared fixtures. Every test runs under the network guard and an offline runtime."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))

import netguard  # noqa: E402

# Before torch loads OpenMP: spinning waits make 2 threads on 2 busy cores ~8x slower than one.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
from yolo_core.runtime import configure_offline  # noqa: E402

# Tests never run on EC2: without this boto3 probes the instance-metadata address for credentials.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
configure_offline()
netguard.install()

pytest_plugins = ["tests.fixtures_aws", "tests.fixtures_data", "tests.fixtures_docker"]


@pytest.fixture(autouse=True)
def network_guard(tmp_path_factory: pytest.TempPathFactory):
    """Fails the test if it, or a subprocess started with `guarded_subprocess_env`, left loopback."""
    report = tmp_path_factory.mktemp("netguard") / "attempts.txt"
    os.environ[netguard.REPORT_ENV] = str(report)
    netguard.clear()
    yield report
    os.environ.pop(netguard.REPORT_ENV, None)
    seen = netguard.attempts() + (report.read_text().splitlines() if report.exists() else [])
    if seen:
        pytest.fail("network guard: non-loopback network use:\n" + "\n".join(seen[:20]))


@pytest.fixture
def guarded_subprocess_env(network_guard: Path) -> dict[str, str]:
    """An environment for subprocesses: the guard installed, the repo importable."""
    env = netguard.guarded_env(network_guard)
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(ROOT)])
    return env
