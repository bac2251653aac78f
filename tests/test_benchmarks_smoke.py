"""Every benchmark script still runs end to end (tiny settings, random weights, no network).

The figures themselves are not checked here (targets live in benchmarks/, never in tests); this
only keeps the scripts from rotting between the runs that produce benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

TINY_RUNS = {
    "preprocess": ["--frames", "8", "--width", "960", "--height", "540", "--repeats", "1"],
    "predict": [
        "--images", "2", "--imgsz", "160", "--batch-sizes", "2", "--repeats", "1",
        "--letterbox", "host,device",  # both places on any machine: the GPU path runs in CI too
    ],
    "sliced": [
        "--frames", "1", "--width", "640", "--height", "480", "--slice-size", "320",
        "--imgsz", "160", "--sahi-batch-sizes", "2", "--repeats", "1",
    ],
    "serve": [
        "--imgsz", "160", "--width", "320", "--height", "240", "--frames", "2", "--clients", "2",
        "--requests", "4", "--warmup-requests", "2", "--duration-s", "60",
    ],
    "train_throughput": [
        "--images", "8", "--imgsz", "96", "--epochs", "2", "--batch", "4", "--loader-batches", "2",
    ],
    "drift_power": ["--seeds", "1", "--kinds", "darker"],
    "distributed_scaling": [
        "--images", "10", "--imgsz", "96", "--epochs", "3", "--batch", "4", "--variants", "1xhalf,2xhalf",
    ],
}  # fmt: skip
WRITES_JSON = {"predict", "sliced", "serve", "train_throughput", "distributed_scaling"}
BESIDE_BASELINE = {  # what each prints where our figure meets its baseline
    "preprocess": "ratio ours/floor",
    "predict": "ratio",
    "sliced": "vs SAHI default",
    "serve": "ratio:",
    "train_throughput": "vs plain",
    "drift_power": "power target",
    "distributed_scaling": "ratio 2 processes / 1xhalf",
}


def run_script(command: list[str], tmp_path: Path, env: dict[str, str]) -> str:
    """Run a benchmark in the test's folder (its temporary files too); its output, once it exits 0."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env={**env, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return output


@pytest.mark.parametrize("name", sorted(TINY_RUNS))
def test_benchmark_script_runs(name: str, tmp_path: Path, guarded_subprocess_env: dict[str, str]) -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *TINY_RUNS[name]]
    if name in WRITES_JSON:
        command += ["--json", str(tmp_path / "out.json")]
    if name in {"preprocess", "train_throughput", "distributed_scaling"}:
        command += ["--work-dir", str(tmp_path / "work")]
    output = run_script(command, tmp_path, guarded_subprocess_env)
    assert BESIDE_BASELINE[name] in output, output[-4000:]
    if name in WRITES_JSON:
        results = json.loads((tmp_path / "out.json").read_text())
        assert results
        if name == "predict":
            variants = {f"torch_fp32_letterbox_on_{place}_batch_2" for place in ("host", "device")}
            assert {"auto_batch_2", *variants} <= set(results["ours"])


def test_monitor_benchmark_runs(tmp_path: Path, guarded_subprocess_env: dict[str, str]) -> None:
    """The serve-then-monitor benchmark end to end, small: every request captured and monitored."""
    command = [sys.executable, str(ROOT / "benchmarks" / "monitor.py"), "--requests", "40"]
    command += ["--frames", "4", "--baseline-frames", "8", "--imgsz", "160"]
    command += ["--work-dir", str(tmp_path / "work"), "--json-out", str(tmp_path / "out.json")]
    output = run_script(command, tmp_path, guarded_subprocess_env)
    assert "ratio (monitoring / serving)" in output, output[-4000:]
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["requests"] == results["captured_records"] == results["images"] == 40
    assert results["failed"] == 0
