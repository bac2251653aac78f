"""`python -m pipeline local --docker`: the whole DAG run with the built images.

Preprocess, Train and Evaluate each run in their image (`docker run --network none`, the step's
/opt/ml tree mounted); the quality gate and the registration (moto) run on the host, as they run
in SageMaker Pipelines outside the containers. The images carry the names the dev config gives
them in ECR, as they would after `make push` or a pull; `--pull never` keeps Docker off the network.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import load_config
from tests.fixtures_docker import TARGETS, BuiltImages, DockerEngine

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parent.parent
TINY_RUN = ["Epochs=1", "ImageSize=64", "MinMap50To95=0", "MinPrecision=0", "MinRecall=0"]
TINY_HYPERPARAMETERS = ["batch=4", "nbs=4", "warmup_epochs=0", "workers=0", "plots=false"]


def test_docker_mode_completes_the_dag(
    docker_engine: DockerEngine, docker_images: BuiltImages, aws_env, guarded_subprocess_env, tmp_path: Path
) -> None:
    from yolo_core.data import generate_scenes

    config = load_config("dev")
    uris = {target: config.images.uri(target, docker_images.tag) for target in TARGETS}
    for target, uri in uris.items():
        docker_engine("tag", docker_images.ref(target), uri)
    raw = generate_scenes(tmp_path / "raw", 8, seed=5, width=128, height=128, object_px=(10, 30))
    tags = [
        f"{name}={docker_images.tag}" for name in ("PreprocessImageTag", "TrainImageTag", "InferenceImageTag")
    ]
    command = [sys.executable, "-m", "pipeline", "local", "--docker", "--env", "dev"]
    command += ["--work-dir", str(tmp_path / "work"), "--input", str(raw)]
    command += [arg for pair in TINY_RUN + tags for arg in ("-p", pair)]
    command += [arg for pair in TINY_HYPERPARAMETERS for arg in ("--hp", pair)]
    env = {**guarded_subprocess_env, **aws_env.env()}
    env["PATH"] = f"{Path(docker_engine.client).parent}:{env['PATH']}"  # the client the fixture checked

    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "pipeline run: Succeeded" in output
    assert "  Train | epoch=1" in output, "the container's own output is streamed"
    for step in ("Preprocess", "Train", "Evaluate"):
        assert f"[{step}] running" in output and f"[{step}] done in" in output
    assert "PendingManualApproval" in output

    logs = {
        log.name.split("-")[0]: log.read_text().splitlines()[0]
        for log in (tmp_path / "work" / "logs").glob("*.log")
    }
    for step, target in (("Preprocess", "preprocess"), ("Train", "train"), ("Evaluate", "train")):
        assert logs[step].startswith("$ docker run --rm --network none --pull never"), logs[step]
        assert f" {uris[target]} " in logs[step]
    assert list((tmp_path / "work").glob("artifacts/Train/*/model/best.pt"))


README_COMMAND = "python -m pipeline local --docker --input raw/ --moto -p Epochs=2 -p ImageSize=160"


def test_the_readme_command_runs_on_the_images_make_build_made(
    docker_engine: DockerEngine, docker_images: BuiltImages, guarded_subprocess_env, tmp_path: Path
) -> None:
    """The README's line, word for word, in a folder holding `raw/`, straight after `make build`:
    no retagging into the config's registry names, no parameters. The images are found under the
    names `make build` gave them (`drone-yolo-<image>:latest`); AWS is the command's own throwaway
    moto. The README's short try (2 epochs at 160 px) on 8 small frames may not meet dev's quality
    gate, so the run ends either registered or in the gate's Fail step."""
    from yolo_core.data import generate_scenes

    assert f"{README_COMMAND}   # the whole DAG" in (ROOT / "README.md").read_text()
    config = load_config("dev")
    for target in TARGETS:  # only what `make build` made: not the registry names another test tags
        docker_engine("image", "rm", config.images.uri(target, "latest"), check=False)
    generate_scenes(tmp_path / "raw", 8, seed=5, width=128, height=128, object_px=(10, 30))
    env = {k: v for k, v in guarded_subprocess_env.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env["PATH"] = f"{Path(docker_engine.client).parent}:{env['PATH']}"

    done = subprocess.run(
        [sys.executable, *README_COMMAND.split()[1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output[-4000:]
    ended = "pipeline run: Succeeded" in output or "is below the minimum" in output
    assert ended and done.returncode in (0, 1), output[-4000:]
    logs = {log.name.split("-")[0]: log for log in (tmp_path / ".pipeline" / "logs").glob("*.log")}
    for step, target in (("Preprocess", "preprocess"), ("Train", "train"), ("Evaluate", "train")):
        first = logs[step].read_text().splitlines()[0]
        assert first.startswith("$ docker run --rm --network none --pull never"), first
        assert f" drone-yolo-{target}:latest " in first, first
    # The feature-store write runs on the host (it talks to AWS), from the same DAG.
    assert "[FeatureStore] running feature_store" in output
