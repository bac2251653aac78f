"""The local runner and `make demo`, end to end with real entrypoints, moto and MLflow.

The demo runs once (tiny settings) in a folder of its own, so what it prints does not depend on
which tests ran before; the runner tests share another work folder (and so the step cache): the
first of them to run builds the run, the others find its steps cached. CI budget: two tiny
trainings and one retraining dominate (a few minutes on 2 cores).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pytest

from pipeline import dag as d
from pipeline.config import load_config
from pipeline.demo import demo_arguments, demo_settings, generate_raw
from pipeline.local_runner import LocalRunSettings, run_local

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "--epochs",
    "1",
    "--frames",
    "8",
    "--imgsz",
    "64",
    "--frame-size",
    "128x128",
    "--object-px",
    "10",
    "30",
]
OPEN_GATE = ["--min-map50-95", "0", "--min-precision", "0", "--min-recall", "0"]


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pipeline-local")


def _settings(work_dir: Path, env: dict, lines: list[str], **overrides) -> LocalRunSettings:
    args = demo_arguments([*TINY, *OPEN_GATE])
    raw_dir = generate_raw(args, work_dir / "raw")
    settings = demo_settings(args, load_config("dev"), work_dir, raw_dir)
    settings.env, settings.emit = env, lines.append
    for name, value in overrides.items():
        setattr(settings, name, value)
    return settings


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's own folder: what it prints (steps run, not cached) does not depend on which
    tests ran before it."""
    return tmp_path_factory.mktemp("demo")


def _demo_output(demo_dir: Path, env: dict) -> str:
    """The demo's output, from one run in `demo_dir` shared by the tests that read it."""
    saved = demo_dir / "demo-output.txt"
    if not saved.exists():
        command = [sys.executable, "-m", "pipeline", "demo", "--work-dir", str(demo_dir), *TINY, *OPEN_GATE]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        saved.write_text(done.stdout)
    return saved.read_text()


@pytest.mark.slow
def test_demo_runs_the_whole_path(demo_dir: Path, guarded_subprocess_env: dict) -> None:
    work_dir = demo_dir
    out = _demo_output(demo_dir, guarded_subprocess_env)
    for expected in (
        "=== 1/6 synthetic drone imagery",
        "[Preprocess] running preprocess",
        "  Train | epoch=1",  # the step's own output is streamed
        "[RegisterModel] drone-yolo-dev v",
        "Approved in MLflow and SageMaker",
        "staging test passed: smoke: 4 content types answered; a bad request got 4",
        "; accuracy: mAP50-95 ",
        "promoted: production drone-yolo-dev-prod: version ",
        "staging:    http://127.0.0.1:",
        "production: http://127.0.0.1:",
        "detections on the 128x128 frame",
        "=== 5/6 monitoring: normal traffic, then a drifted batch",
        "sent 24 normal frames to production; monitoring those 24 requests",
        "sent 24 drifted frames to production; monitoring those 24 requests",
        "ALERT on the queue (Model Monitoring Violations)",
        "stopped the staging and production servers",
        "evaluation metrics:    map50=",
        f"/mlflow ui --backend-store-uri sqlite:///{work_dir}/mlflow.db",  # the venv's mlflow
    ):
        assert expected in out, f"{expected!r} missing from the demo output:\n{out[-4000:]}"
    audit = [json.loads(line) for line in (work_dir / "registry-audit.jsonl").read_text().splitlines()]
    assert [(e["action"], e["who"]) for e in audit[-2:]] == [("Approved", "demo"), ("Promoted", "pipeline")]
    # Both servers were stopped: their recorded URLs no longer answer.
    for stage in ("staging", "production"):
        url = next(line.split()[-1] for line in out.splitlines() if line.startswith(f"{stage}: "))
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{url}/ping", timeout=5)
    assert list(work_dir.glob("artifacts/Train/*/model/best.pt"))
    # The FeatureStore step of the DAG wrote them (and the offline store of the demo's moto).
    assert list(work_dir.glob("artifacts/FeatureStore/*/features/image_stats.parquet"))
    assert "[FeatureStore] running feature_store" in out and "[MlflowMirror] running register_mirror" in out
    drifted = next(line for line in out.splitlines() if line.startswith("monitoring, drifted traffic: "))
    assert drifted.endswith("1 alert(s)"), drifted
    assert list(work_dir.glob("monitoring/artifacts/Monitor/*/resultdata/report.html"))


@pytest.mark.slow
def test_lineage_command_after_the_demo(demo_dir: Path, aws_env, guarded_subprocess_env: dict) -> None:
    """The demo's AWS stand-in is gone: lineage still answers from MLflow and says so."""
    work_dir = demo_dir
    _demo_output(demo_dir, guarded_subprocess_env)
    # The version the demo approved, by number, not "latest".
    audit = [json.loads(line) for line in (work_dir / "registry-audit.jsonl").read_text().splitlines()]
    approved = [
        entry["version"] for entry in audit if entry["action"] == "Approved" and entry["who"] == "demo"
    ]
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "lineage",
        "--work-dir",
        str(work_dir),
        "--version",
        approved[-1],
    ]
    env = {**guarded_subprocess_env, **aws_env.env()}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lineage = json.loads(done.stdout)
    assert lineage["approval"]["mlflow"] == "Approved"
    assert lineage["approval"]["sagemaker"].startswith("unavailable") and not lineage["approval"]["in_step"]
    assert lineage["data"]["input_data_uri"] == str(work_dir / "raw")
    assert len(lineage["data"]["dataset_hash"]) == 64
    assert set(lineage["images"]) == {"preprocess", "train", "inference"}
    assert lineage["audit"][0]["action"] == "Approved"  # then the demo's promotion, where recorded


@pytest.mark.slow
def test_local_command_with_a_throwaway_moto(work_dir: Path, guarded_subprocess_env: dict) -> None:
    """`python -m pipeline local --moto` with the demo's settings: its steps come from the cache."""
    settings = _settings(work_dir, guarded_subprocess_env, [])
    params = [f"-p{name}={value}" for name, value in settings.parameters.items() if name != "InputDataUri"]
    hps = [f"--hp={name}={value}" for name, value in settings.hyperparameters.items()]
    command = [sys.executable, "-m", "pipeline", "local", "--work-dir", str(work_dir), "--moto"]
    command += ["--input", settings.parameters["InputDataUri"], *params, *hps]
    done = subprocess.run(
        command, cwd=ROOT, env=guarded_subprocess_env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "pipeline run: Succeeded" in done.stdout
    assert "registered: drone-yolo-dev version" in done.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in done.stdout
    for step in (d.PREPROCESS, d.TRAIN, d.EVALUATE):
        assert f"[{step}] " in done.stdout


@pytest.mark.slow
def test_second_run_reuses_every_step_and_registers(
    work_dir: Path, aws_env, guarded_subprocess_env: dict
) -> None:
    lines: list[str] = []
    run_local(_settings(work_dir, guarded_subprocess_env, lines))  # cached already when the demo ran
    result = run_local(_settings(work_dir, guarded_subprocess_env, lines))
    assert result.status == "Succeeded", result.failure
    assert [result.record(s).status for s in (d.PREPROCESS, d.TRAIN, d.EVALUATE)] == ["cached"] * 3
    assert result.registered is not None and result.registered.status == "PendingManualApproval"
    client = boto3.client("sagemaker", region_name=aws_env.env()["AWS_DEFAULT_REGION"])
    package = client.describe_model_package(ModelPackageName=result.registered.model_package_arn)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert Path(result.record(d.TRAIN).outputs["model"], "best.pt").is_file()


@pytest.mark.slow
def test_changed_hyperparameter_reruns_train_and_what_follows(
    work_dir: Path, aws_env, guarded_subprocess_env: dict
) -> None:
    lines: list[str] = []
    baseline = run_local(_settings(work_dir, guarded_subprocess_env, lines, register=False))
    settings = _settings(work_dir, guarded_subprocess_env, lines, register=False)
    settings.hyperparameters = {**settings.hyperparameters, "lr0": "0.02"}
    changed = run_local(settings)
    assert changed.status == "Succeeded", changed.failure
    assert changed.record(d.PREPROCESS).status == "cached"
    assert changed.record(d.PREPROCESS).cache_key == baseline.record(d.PREPROCESS).cache_key
    assert changed.record(d.TRAIN).status == "ran" and changed.record(d.EVALUATE).status == "ran"
    assert changed.record(d.TRAIN).cache_key != baseline.record(d.TRAIN).cache_key
    assert any(line.startswith("  Train | ") for line in lines)  # progress of the rerun was shown


@pytest.mark.slow
@pytest.mark.parametrize("gate", d.GATES, ids=[g.metric for g in d.GATES])
def test_gate_not_met_ends_in_the_fail_step_and_registers_nothing(
    gate: d.Gate, work_dir: Path, aws_env, guarded_subprocess_env: dict
) -> None:
    lines: list[str] = []
    settings = _settings(work_dir, guarded_subprocess_env, lines)
    settings.parameters = {**settings.parameters, gate.threshold_param: 1.0}  # the highest allowed
    result = run_local(settings)
    assert result.status == "Failed" and result.registered is None
    value = result.metrics[gate.metric]
    assert result.failure == f"{gate.label} {value} is below the minimum 1.0 ({gate.threshold_param})"
    fail_step = gate.threshold_param.removeprefix("Min") + "TooLow"
    assert result.record(fail_step).status == "failed"
    assert d.REGISTER not in {r.step for r in result.records}
    client = boto3.client("sagemaker", region_name=aws_env.env()["AWS_DEFAULT_REGION"])
    assert client.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_a_failing_step_reports_its_one_line_reason(tmp_path: Path, guarded_subprocess_env: dict) -> None:
    empty = tmp_path / "raw"
    empty.mkdir()
    lines: list[str] = []
    settings = LocalRunSettings(
        config=load_config("dev"),
        work_dir=tmp_path / "work",
        parameters={"InputDataUri": str(empty)},
        register=False,
        feature_store=False,
        env=guarded_subprocess_env,
        emit=lines.append,
    )
    result = run_local(settings)
    assert result.status == "Failed"
    assert "step Preprocess failed:" in result.failure
    assert "input folder is missing or empty" in result.failure
    assert result.record(d.PREPROCESS).status == "failed"
    assert Path(result.record(d.PREPROCESS).log_file).is_file()


@pytest.mark.slow
def test_monitor_command_over_what_the_demos_production_captured(
    demo_dir: Path, guarded_subprocess_env: dict
):
    """`python -m pipeline monitor --local`: the approved version's references from MLflow, the DAG's
    two steps over the demo's drifted window, and the alert on a throwaway moto's queue."""
    _demo_output(demo_dir, guarded_subprocess_env)
    capture = demo_dir / "monitoring" / "windows" / "drifted"
    command = [sys.executable, "-m", "pipeline", "monitor", "--local", "--moto", "--work-dir", str(demo_dir)]
    command += ["--capture", str(capture)]
    done = subprocess.run(
        command, cwd=ROOT, env=guarded_subprocess_env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "24 records, 24 images" in done.stdout, done.stdout
    assert "alert on the queue: Model Monitoring Violations" in done.stdout, done.stdout
