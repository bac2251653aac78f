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

from entrypoints.environment import configure_offline  # noqa: E402
from yolo_core.runtime import passive_openmp_waits  # noqa: E402

passive_openmp_waits()  # before anything loads torch's OpenMP

# Tests never run on EC2: without this boto3 probes the instance-metadata address for credentials.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
configure_offline()
netguard.install()

pytest_plugins = ["tests.fixtures_aws", "tests.fixtures_data", "tests.fixtures_docker"]


@pytest.fixture
def offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure_offline writes these, and remembers its cache root and threads; the test's values
    are undone afterwards, so no later test uses a deleted temp folder."""
    from yolo_core import cache_dir, runtime

    # Kept for the test (Ultralytics, if it is imported now, fixes its folder from it), then restored.
    monkeypatch.setenv("YOLO_CONFIG_DIR", os.environ["YOLO_CONFIG_DIR"])
    for key in ("MPLCONFIGDIR", "SAGEMAKER_USER_CONFIG_OVERRIDE", "OMP_NUM_THREADS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(cache_dir, "_default_root", cache_dir._default_root)
    monkeypatch.setattr(runtime, "_configured_threads", runtime._configured_threads)


@pytest.fixture
def engine_cache(tmp_path: Path, offline_env) -> Path:
    """A private cache of the test's own (exports, IRs, engine choices), the default root meanwhile."""
    from yolo_core import cache_dir

    cache_dir.set_default_root(tmp_path / "cache")
    return tmp_path / "cache"


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
