"""Each image against its SageMaker contract, in real containers with no network at all.

The steps feed each other as on SageMaker: preprocess turns synthetic raw VisDrone scenes into a
dataset; train runs on it until its first epoch's checkpoint, gets SIGTERM (a spot interruption)
and a SECOND container, sharing nothing but the checkpoint folder, resumes and finishes; evaluate
scores that model; serve answers /ping and /invocations with it.

Every container runs with `--network none`. For serve that rules out a published port, so the
HTTP client runs inside the container's own network namespace (`docker exec`, Python's urllib on
127.0.0.1:8080): the server is reached exactly as SageMaker's health checks reach it, and the
test still proves the image needs no network.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from entrypoints.contract import TrainingPaths, write_training_config
from tests.fixtures_docker import BuiltImages, DockerEngine, container_user, hand_to_container
from yolo_core.model_card import ModelCard

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(3600)]

EPOCHS = 3
HYPERPARAMETERS = {  # strings, as SageMaker writes them
    "epochs": str(EPOCHS),
    "imgsz": "160",
    "batch": "2",
    "nbs": "4",
    "warmup_epochs": "1",
    "plots": "false",
    "experiment_name": "container-test",
}


def _run(engine: DockerEngine, image: str, *command: str, mounts: dict[Path, str], timeout: float = 900):
    args = ["run", "--rm", "--network", "none", "--user", container_user()]
    for host, target in mounts.items():
        args += ["--volume", f"{host}:{target}"]
    return engine(*args, image, *command, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def preprocessed(
    docker_engine: DockerEngine, docker_images: BuiltImages, tmp_path_factory
) -> tuple[Path, object]:
    from yolo_core.data import generate_scenes

    opt_ml = tmp_path_factory.mktemp("preprocess") / "opt_ml"
    generate_scenes(
        opt_ml / "processing" / "input" / "data", 12, seed=3, width=320, height=320, object_px=(14, 48)
    )
    hand_to_container(opt_ml)
    done = _run(
        docker_engine,
        docker_images.ref("preprocess"),
        "preprocess",
        "--no-progress",
        mounts={opt_ml: "/opt/ml"},
    )
    return opt_ml, done


def test_preprocess_turns_raw_scenes_into_a_dataset(preprocessed) -> None:
    opt_ml, done = preprocessed
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    output = opt_ml / "processing" / "output"
    data_yaml = (output / "dataset" / "data.yaml").read_text()
    assert "path:" not in data_yaml and "train: images/train" in data_yaml
    assert json.loads((output / "report" / "quality_report.json").read_text())["passed"] is True
    assert json.loads((output / "baseline" / "baseline.json").read_text())["image_count"] == 12
    assert len(list((output / "dataset" / "images" / "train").iterdir())) > 0


def _training_host(root: Path, dataset: Path) -> Path:
    """A fresh /opt/ml as SageMaker lays it out: config files and the `dataset` channel."""
    training = TrainingPaths(root / "opt_ml")
    write_training_config(training, HYPERPARAMETERS, ["dataset"])
    shutil.copytree(dataset, training.channel("dataset"))
    return hand_to_container(training.base)


@dataclass
class TrainingRun:
    first_exit: int
    first_logs: str
    first_failure: str
    second: object
    opt_ml: Path


def _wait_for_file(engine: DockerEngine, container: str, path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        state = engine("inspect", "--format", "{{.State.Running}}", container).stdout.strip()
        if state != "true" or time.monotonic() > deadline:
            logs = engine("logs", container, check=False)
            pytest.fail(f"no {path.name} (running: {state}):\n{(logs.stdout + logs.stderr)[-3000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def trained(
    docker_engine: DockerEngine, docker_images: BuiltImages, preprocessed, tmp_path_factory
) -> TrainingRun:
    dataset = preprocessed[0] / "processing" / "output" / "dataset"
    root = tmp_path_factory.mktemp("train")
    checkpoints = root / "checkpoints"
    checkpoints.mkdir()
    hand_to_container(checkpoints)
    host_a = _training_host(root / "host-a", dataset)
    shared = {checkpoints: "/opt/ml/checkpoints"}

    name = f"drone-yolo-train-test-{uuid.uuid4().hex[:8]}"
    args = ["run", "--detach", "--name", name, "--network", "none", "--user", container_user()]
    args += ["--volume", f"{host_a}:/opt/ml", "--volume", f"{checkpoints}:/opt/ml/checkpoints"]
    docker_engine(*args, docker_images.ref("train"), "train")
    try:
        _wait_for_file(docker_engine, name, checkpoints / "run" / "weights" / "epoch-0001.pt", timeout_s=900)
        docker_engine("kill", "--signal", "TERM", name)
        first_exit = int(docker_engine("wait", name, timeout=300).stdout.strip())
        logs = docker_engine("logs", name)
    finally:
        docker_engine("rm", "--force", name, check=False)
    failure_file = host_a / "output" / "failure"
    first_failure = failure_file.read_text() if failure_file.exists() else ""

    host_b = _training_host(root / "host-b", dataset)  # a new spot host: only the checkpoints carry over
    second = _run(docker_engine, docker_images.ref("train"), "train", mounts={host_b: "/opt/ml", **shared})
    return TrainingRun(first_exit, logs.stdout + logs.stderr, first_failure, second, host_b)


def test_train_survives_sigterm_and_resumes_in_a_second_container(trained: TrainingRun) -> None:
    assert trained.first_exit == 128 + signal.SIGTERM, trained.first_logs[-3000:]
    assert "SIGTERM" in trained.first_failure and trained.first_failure.count("\n") == 1
    second_logs = trained.second.stdout + trained.second.stderr
    assert trained.second.returncode == 0, second_logs[-3000:]
    card = ModelCard.load(trained.opt_ml / "model")
    assert (trained.opt_ml / "model" / "best.pt").stat().st_size > 1_000_000
    assert card.extra["epochs_completed"] == EPOCHS and card.extra["resumes"] == 1
    assert card.imgsz == 160 and set(card.metrics) == {"precision", "recall", "mAP50", "mAP50-95"}


def test_evaluate_scores_the_model_on_the_dataset(
    docker_engine: DockerEngine,
    docker_images: BuiltImages,
    preprocessed,
    trained: TrainingRun,
    tmp_path: Path,
) -> None:
    opt_ml = tmp_path / "opt_ml"
    shutil.copytree(trained.opt_ml / "model", opt_ml / "processing" / "input" / "model")
    shutil.copytree(
        preprocessed[0] / "processing" / "output" / "dataset", opt_ml / "processing" / "input" / "dataset"
    )
    hand_to_container(opt_ml)
    done = _run(docker_engine, docker_images.ref("train"), "evaluate", mounts={opt_ml: "/opt/ml"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    output = opt_ml / "processing" / "output" / "evaluation"
    report = json.loads((output / "evaluation.json").read_text())
    for metric in ("map50", "map50_95", "precision", "recall"):
        assert 0.0 <= report["metrics"][metric]["value"] <= 1.0
    assert (output / "pr_curve.png").stat().st_size > 0 and (output / "confusion_matrix.png").exists()


CLIENT = """
import json, sys, urllib.error, urllib.request
path, content_type = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
body = sys.stdin.buffer.read() if content_type else None
request = urllib.request.Request("http://127.0.0.1:8080" + path, data=body)
if content_type:
    request.add_header("Content-Type", content_type)
try:
    with urllib.request.urlopen(request, timeout=60) as response:
        status, text = response.status, response.read().decode()
except urllib.error.HTTPError as error:
    status, text = error.code, error.read().decode()
except OSError as error:
    status, text = 0, str(error)
print(json.dumps({"status": status, "body": text}))
"""


def _request(
    engine: DockerEngine, container: str, path: str, body: bytes | None = None, content_type: str = ""
):
    """An HTTP request from inside the container's network namespace."""
    args = [
        "exec",
        "--interactive",
        container,
        "python",
        "-c",
        CLIENT,
        path,
        *([content_type] if body else []),
    ]
    done = engine.run_with_input(args, body or b"", timeout=120)
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def test_serve_answers_ping_and_invocations_and_stops_on_sigterm(
    docker_engine: DockerEngine, docker_images: BuiltImages, preprocessed, trained: TrainingRun
) -> None:
    model_dir = trained.opt_ml / "model"
    frame = next((preprocessed[0] / "processing" / "output" / "dataset" / "images" / "val").iterdir())
    name = f"drone-yolo-serve-test-{uuid.uuid4().hex[:8]}"
    args = ["run", "--detach", "--name", name, "--network", "none", "--user", container_user()]
    docker_engine(*args, "--volume", f"{model_dir}:/opt/ml/model:ro", docker_images.ref("inference"), "serve")
    try:
        deadline = time.monotonic() + 300
        while (ping := _request(docker_engine, name, "/ping"))["status"] != 200:
            assert time.monotonic() < deadline, f"no 200 from /ping: {ping}"
            time.sleep(1)

        answer = _request(docker_engine, name, "/invocations", frame.read_bytes(), "image/jpeg")
        assert answer["status"] == 200, answer
        result = json.loads(answer["body"])
        assert (result["width"], result["height"]) == (320, 320)
        assert isinstance(result["detections"], list)

        bad = _request(docker_engine, name, "/invocations", b"not an image", "image/jpeg")
        assert 400 <= bad["status"] < 500 and "error" in json.loads(bad["body"])

        # Exit code 0 (not 137): SIGTERM alone stopped it, the way SageMaker stops a container
        # before its SIGKILL. The grace here is generous so that a slow machine cannot fail it.
        docker_engine("stop", "--time", "120", name, timeout=300)
        assert docker_engine("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    finally:
        docker_engine("rm", "--force", name, check=False)
