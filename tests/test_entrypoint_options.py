"""Bad flags and bad files fail the container commands at once, with one line naming the culprit.

Each command runs as a real subprocess (as a container runs it). For `serve` the failure must come
before the port opens: uvicorn never starts and no port is written. The model
folders here are a model.json and a stand-in best.pt: nothing is trained or loaded.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from yolo_core.errors import UserInputError
from yolo_core.model_card import ModelCard
from yolo_core.serving.model import ModelHolder

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 90  # torch's import alone takes seconds on two busy cores
UVICORN_STARTED = ("Started server process", "Uvicorn running", "Waiting for application startup")


def model_folder(folder: Path, weights: bytes | None = None) -> Path:
    """model.json + a best.pt that passes serve's format check (a zip) unless `weights` is given."""
    ModelCard(class_names=["car", "person"], imgsz=320, model="yolo11n.yaml").save(folder)
    if weights is None:
        with zipfile.ZipFile(folder / "best.pt", "w") as archive:
            archive.writestr("best/data.pkl", b"not loaded by these tests")
    else:
        (folder / "best.pt").write_bytes(weights)
    return folder


def run_command(module: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess, *expected: str) -> str:
    """A non-zero exit whose stderr is a single `error:` line holding each of `expected`."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and "error: " in lines[0], result.stderr
    for text in expected:
        assert text in lines[0], result.stderr
    return lines[0]


def run_serve(model_dir: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """`serve` on a port the system would pick; asserts that it stopped before uvicorn started
    (it never listened: no port was written to `--port-file`)."""
    port_file = model_dir.parent / "bound.port"
    command = [
        "--model-dir",
        str(model_dir),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--port-file",
        str(port_file),
    ]
    result = run_command("entrypoints.serve", [*command, *args], env)
    assert not any(marker in result.stderr + result.stdout for marker in UVICORN_STARTED), result.stderr
    assert not port_file.exists(), "the server listened before failing"
    return result


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return model_folder(tmp_path / "model")


# --- serve: argparse errors (exit 2), each naming the flag and the allowed values -------------


@pytest.mark.parametrize(
    ("flag", "value", "allowed"),
    [
        ("--backend", "bogus", "auto, torch, onnx"),
        ("--precision", "fp8", "auto, fp32, fp16, bf16"),
        ("--threads", "-3", ">= 0"),
        ("--max-batch-size", "0", ">= 1"),
        ("--port", "99999", "from 0 to 65535"),
        ("--max-request-tiles", "0", ">= 1"),
        ("--body-timeout-s", "0", "> 0"),
        ("--stuck-after-s", "-1", "> 0"),
        ("--max-megapixels-in-flight", "0", "> 0"),
        ("--capture-queue-mb", "0", "> 0"),
        ("--max-body-mb", "-1", "> 0"),
        ("--max-images", "0", ">= 1"),
        ("--request-timeout-s", "0", "> 0"),
        ("--capture-percentage", "500", "from 0 to 100"),
        ("--max-wait-ms", "-5", ">= 0"),
        ("--warmup-batches", "-1", ">= 0"),
        ("--max-megapixels", "0", "> 0"),
        ("--max-queued-images", "0", ">= 1"),
        ("--max-body-mb", "nan", "> 0"),
        ("--max-batch-size", "two", "an integer"),
    ],
)
def test_serve_refuses_a_flag_out_of_range(
    model_dir: Path, guarded_subprocess_env: dict[str, str], flag: str, value: str, allowed: str
) -> None:
    result = run_serve(model_dir, [flag, value], guarded_subprocess_env)
    assert result.returncode == 2
    assert_one_line_failure(result, f"argument {flag}:", repr(value), allowed)


def test_serve_checks_values_from_environment_variables(
    model_dir: Path, guarded_subprocess_env: dict[str, str]
) -> None:
    env = {**guarded_subprocess_env, "SERVE_MAX_BATCH_SIZE": "0", "SERVE_BACKEND": "bogus"}
    result = run_serve(model_dir, [], env)
    assert result.returncode == 2
    assert_one_line_failure(result, "argument --")


def test_serve_refuses_a_queue_smaller_than_one_request(
    model_dir: Path, guarded_subprocess_env: dict[str, str]
) -> None:
    result = run_serve(model_dir, ["--max-queued-images", "4", "--max-images", "8"], guarded_subprocess_env)
    assert_one_line_failure(result, "--max-queued-images", "--max-images")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (
            ["--max-megapixels-in-flight", "100", "--max-request-megapixels", "200"],
            "--max-request-megapixels",
        ),
        (["--stuck-after-s", "30", "--request-timeout-s", "55"], "--request-timeout-s"),
    ],
)
def test_serve_refuses_limits_that_contradict_each_other(
    model_dir: Path, guarded_subprocess_env: dict[str, str], args: list[str], named: str
) -> None:
    result = run_serve(model_dir, args, guarded_subprocess_env)
    assert result.returncode == 2
    assert_one_line_failure(result, f"argument {args[0]}:", named)


# --- serve: what needs the machine or the file system (exit 1, `error:` line) ----------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--device", "bogus"], ["--device", "'bogus'"]),
        (["--device", "cuda:7"], ["--device"]),
        (["--device", "mps"], ["--device", "'mps'"]),
        (["--backend", "onnx", "--precision", "bf16"], ["--precision", "onnx"]),
    ],
)
def test_serve_resolves_device_and_precision_before_the_port_opens(
    model_dir: Path, guarded_subprocess_env: dict[str, str], args: list[str], expected: list[str]
) -> None:
    result = run_serve(model_dir, args, guarded_subprocess_env)
    assert result.returncode == 1
    assert_one_line_failure(result, *expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize(
    ("args", "flag"), [(["--device", "cuda"], "--device"), (["--precision", "fp16"], "--precision")]
)
def test_serve_without_a_gpu_refuses_gpu_settings(
    model_dir: Path, guarded_subprocess_env: dict[str, str], args: list[str], flag: str
) -> None:
    result = run_serve(model_dir, args, guarded_subprocess_env)
    assert result.returncode == 1
    assert_one_line_failure(result, flag, "GPU")


def test_serve_refuses_a_capture_dir_that_is_a_file(
    model_dir: Path, guarded_subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "capture"
    blocker.write_text("a file, not a folder")
    for folder in (blocker, blocker / "below"):
        result = run_serve(model_dir, ["--capture-dir", str(folder)], guarded_subprocess_env)
        assert result.returncode == 1
        assert_one_line_failure(result, "--capture-dir", str(folder))


def test_serve_refuses_weights_that_are_not_a_checkpoint(
    guarded_subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    folder = model_folder(tmp_path / "model", weights=b"hello\n")
    result = run_serve(folder, [], guarded_subprocess_env)
    assert result.returncode == 1
    assert_one_line_failure(result, str(folder / "best.pt"), "not a PyTorch checkpoint")


def test_serve_help_shows_defaults_and_environment_variables(guarded_subprocess_env: dict[str, str]) -> None:
    result = run_command("entrypoints.serve", ["--help"], guarded_subprocess_env)
    assert result.returncode == 0
    assert "SERVE_MAX_BATCH_SIZE" in result.stdout and "(default: 8)" in result.stdout
    assert "SAGEMAKER_BIND_TO_PORT" in result.stdout and "(default: 8080)" in result.stdout


# --- evaluate -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value", "allowed"),
    [
        ("--precision", "fp8", "auto, fp32, fp16, bf16"),
        ("--batch-size", "0", ">= 1"),
        ("--conf", "5", "from 0 to 1"),
        ("--iou", "-0.1", "from 0 to 1"),
        ("--slice-size", "10", ">= 128"),
        ("--overlap", "1", "< 1"),
        ("--imgsz", "8", ">= 32"),
        ("--max-det", "0", ">= 1"),
    ],
)
def test_evaluate_refuses_a_flag_out_of_range(
    model_dir: Path, guarded_subprocess_env: dict[str, str], flag: str, value: str, allowed: str
) -> None:
    args = ["--model", str(model_dir), "--dataset", str(model_dir), flag, value]
    result = run_command("entrypoints.evaluate", args, guarded_subprocess_env)
    assert result.returncode == 2
    assert_one_line_failure(result, f"argument {flag}:", repr(value), allowed)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--device", "bogus"], "--device"),
        (["--device", "cuda:7"], "--device"),
        (["--device", "mps"], "--device"),
    ],
)
def test_evaluate_resolves_the_device_before_loading(
    model_dir: Path, guarded_subprocess_env: dict[str, str], tmp_path: Path, args: list[str], flag: str
) -> None:
    (tmp_path / "ml").mkdir()  # the job's contract tree: the failure reason goes there
    env = {**guarded_subprocess_env, "SAGEMAKER_BASE_DIR": str(tmp_path / "ml")}
    command = ["--model", str(model_dir), "--dataset", str(tmp_path / "no-dataset"), *args]
    result = run_command("entrypoints.evaluate", command, env)
    assert result.returncode == 1
    line = assert_one_line_failure(result, flag)
    assert (tmp_path / "ml" / "output" / "message").read_text().strip() == line.removeprefix("error: ")
    env["SAGEMAKER_BASE_DIR"] = str(tmp_path / "laptop" / "ml")  # no tree: none is made for it
    assert run_command("entrypoints.evaluate", command, env).returncode == 1
    assert not (tmp_path / "laptop").exists()


def test_evaluate_help_shows_defaults(guarded_subprocess_env: dict[str, str]) -> None:
    result = run_command("entrypoints.evaluate", ["--help"], guarded_subprocess_env)
    assert result.returncode == 0
    assert "(default: 0.001)" in result.stdout and "(default: 8)" in result.stdout


def test_evaluate_names_a_broken_archive_in_one_complete_line(
    guarded_subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    archive = tmp_path / "model.tar.gz"
    archive.write_text("hello\n")
    env = {**guarded_subprocess_env, "SAGEMAKER_BASE_DIR": str(tmp_path / "ml")}
    command = ["--model", str(archive), "--dataset", str(tmp_path), "--device", "cpu"]
    result = run_command("entrypoints.evaluate", command, env)
    line = assert_one_line_failure(result, str(archive), "not a readable model archive")
    assert line.count("(") == line.count(")"), line


# --- train ----------------------------------------------------------------------------------


def test_train_refuses_starting_weights_that_are_not_a_checkpoint(
    guarded_subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    base = tmp_path / "ml"
    weights = base / "input" / "data" / "weights" / "start.pt"
    weights.parent.mkdir(parents=True)
    weights.write_text("hello")
    dataset = base / "input" / "data" / "dataset"
    dataset.mkdir(parents=True)
    (dataset / "data.yaml").write_text("names: [car]\n")
    env = {**guarded_subprocess_env, "SAGEMAKER_BASE_DIR": str(base)}
    result = run_command("entrypoints.train", [], env)
    line = assert_one_line_failure(result, str(weights), "not a loadable Ultralytics checkpoint")
    assert "download" not in result.stderr.lower()
    assert (base / "output" / "failure").read_text().strip() == line.removeprefix("error: ")
    assert not (base / "model" / "best.pt").exists()


def test_train_refuses_a_resource_config_that_does_not_name_this_host(
    guarded_subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    base = tmp_path / "ml"
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]})
    )
    result = run_command("entrypoints.train", [], {**guarded_subprocess_env, "SAGEMAKER_BASE_DIR": str(base)})
    line = assert_one_line_failure(result, "resourceconfig.json", "current_host 'algo-3' is not one of hosts")
    assert (base / "output" / "failure").read_text().strip() == line.removeprefix("error: ")


def test_train_worker_mode_is_for_torchrun_only(
    guarded_subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**guarded_subprocess_env, "SAGEMAKER_BASE_DIR": str(tmp_path / "ml")}
    result = run_command("entrypoints.train", ["--worker"], env)
    assert_one_line_failure(result, "--worker: only torchrun starts workers")


# --- in-process: the shared checks and the server's background load -------------------------


def _failed_load(error: Exception, caplog: pytest.LogCaptureFixture) -> tuple[str, list[logging.LogRecord]]:
    failures: list[str] = []

    def load():
        raise error

    holder = ModelHolder(load, on_failure=failures.append)
    with caplog.at_level(logging.ERROR, logger="yolo_core.serving.model"):
        holder.start_loading().join(10)
    assert failures == [holder.error] and not holder.ready
    return holder.error, [r for r in caplog.records if r.name == "yolo_core.serving.model"]


def test_a_bad_model_file_logs_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    reason, records = _failed_load(UserInputError("best.pt: not a loadable checkpoint\nmore"), caplog)
    assert reason == "best.pt: not a loadable checkpoint"
    assert len(records) == 1 and records[0].exc_info is None and reason in records[0].getMessage()


def test_an_unexpected_load_failure_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    reason, records = _failed_load(RuntimeError("CUDA out of memory"), caplog)
    assert reason == "RuntimeError: CUDA out of memory"
    assert len(records) == 1 and records[0].exc_info is not None
