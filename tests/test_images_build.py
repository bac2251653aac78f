"""`make build`: every image built for real on the stand-in base, tagged and labelled with the
version and git commit, holding the commands SageMaker calls and nothing it must not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures_docker import TARGETS, BuiltImages, DockerEngine, container_user, make_variable

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {"preprocess": "preprocess", "train": "train", "inference": "serve"}


def _config(engine: DockerEngine, image: str) -> dict:
    return json.loads(engine("image", "inspect", "--format", "{{json .Config}}", image).stdout)


def test_images_are_tagged_and_labelled_with_version_and_commit(
    docker_engine: DockerEngine, docker_images: BuiltImages
) -> None:
    version, commit = make_variable("VERSION"), docker_images.commit
    assert len(commit) == 40 or commit == "unknown"
    assert docker_images.tag.startswith(f"{version}-{commit[:12]}")
    for target in TARGETS:
        labels = _config(docker_engine, docker_images.ref(target))["Labels"]
        assert labels["org.opencontainers.image.version"] == version
        assert labels["org.opencontainers.image.revision"] == commit
        assert labels["org.opencontainers.image.title"] == f"drone-yolo-{target}"
        assert labels["org.opencontainers.image.base.name"] == docker_images.base


def test_images_follow_the_sagemaker_run_contract(
    docker_engine: DockerEngine, docker_images: BuiltImages
) -> None:
    """`docker run IMAGE train|serve` replaces CMD and runs under an init that forwards SIGTERM;
    the default user is root, as SageMaker expects."""
    for target, command in COMMANDS.items():
        config = _config(docker_engine, docker_images.ref(target))
        assert config["Entrypoint"] == ["dumb-init", "--"]
        assert config["Cmd"] == [command]
        assert config["User"] in ("", "root", "0")
        assert config["Env"] and any(e.startswith("GIT_COMMIT=") for e in config["Env"])
    assert "8080/tcp" in _config(docker_engine, docker_images.ref("inference"))["ExposedPorts"]


CHECK = """
import importlib.metadata as metadata, json, os, shutil
import torch, cv2
names = {d.metadata["Name"].lower() for d in metadata.distributions()}
print(json.dumps({
    "uid": os.getuid(),
    "commands": {c: bool(shutil.which(c)) for c in ("preprocess", "train", "evaluate", "serve")},
    "torch": torch.__version__,
    "gui_opencv": sorted(names & {"opencv-python", "opencv-contrib-python"}),
    "ultralytics": metadata.version("ultralytics"),
}))
"""


def test_commands_run_unprivileged_offline_with_the_pinned_stack(
    docker_engine: DockerEngine, docker_images: BuiltImages
) -> None:
    user = container_user()
    for target in TARGETS:
        done = docker_engine(
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            user,
            docker_images.ref(target),
            "python",
            "-c",
            CHECK,
        )
        facts = json.loads(done.stdout.strip().splitlines()[-1])
        assert facts["uid"] == int(user.split(":")[0])
        assert all(facts["commands"].values()), facts["commands"]
        assert facts["torch"].startswith("2.14.1") and facts["ultralytics"] == make_variable(
            "ULTRALYTICS_VERSION"
        )
        assert facts["gui_opencv"] == []
    help_text = docker_engine(
        "run", "--rm", "--network", "none", "--user", user, docker_images.ref("train"), "train", "--help"
    )
    assert "usage: train" in help_text.stdout


def test_make_run_uses_gpus_or_falls_back_to_the_cpu(
    docker_engine: DockerEngine, docker_images: BuiltImages, tmp_path
) -> None:
    """`make run-preprocess` asks for every GPU; where Docker has none it says so and runs on the CPU.
    The OPT_ML tree it mounts did not exist: make creates it as the caller, not Docker as root."""
    opt_ml = tmp_path / "opt_ml"
    command = ["make", "--no-print-directory", "run-preprocess", f"DOCKER={docker_engine.client}"]
    command += [f"IMAGE_TAG={docker_images.tag}", f"OPT_ML={opt_ml}", "ARGS=--synthetic 2 --no-progress"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (opt_ml / "processing" / "output" / "dataset" / "data.yaml").is_file()
    assert (opt_ml / "processing" / "input" / "data").stat().st_uid == os.getuid()
    if not shutil.which("nvidia-smi"):
        assert "no GPU runtime here (docker run --gpus all exited 125); running on the CPU" in done.stderr
