"""The documented pipeline commands as a user types them: refusals before any AWS call, the
training-tree layout for `make run-train`, and the tag `make push` records for `upsert`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.pushed_images import pushed_tag, record_push

ROOT = Path(__file__).resolve().parent.parent


def _pipeline(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pipeline", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def real_aws_env(guarded_subprocess_env: dict[str, str]) -> dict[str, str]:
    """No stand-in endpoint: a command here would reach AWS itself (the network guard stops it)."""
    return {k: v for k, v in guarded_subprocess_env.items() if not k.startswith("AWS_ENDPOINT_URL")}


@pytest.mark.parametrize(
    ("args", "action"),
    [
        (["upsert", "--env", "dev"], "upsert"),
        (["start", "--env", "staging"], "start"),
        (["local", "--env", "dev", "--input", "raw/"], "local (registers in SageMaker"),
        (["approve", "--env", "prod", "--version", "1", "--reason", "ok"], "approve"),
    ],
)
def test_the_example_accounts_never_reach_real_aws(
    args: list[str], action: str, real_aws_env, tmp_path
) -> None:
    done = _pipeline(args, real_aws_env, cwd=ROOT)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith(f"error: {action}") and "names the example account" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_gpus_only_with_docker(real_aws_env) -> None:
    done = _pipeline(["local", "--input", "raw/", "--moto", "--gpus"], real_aws_env)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: --gpus: only with --docker (without it the steps use this machine's GPUs)"
    )


def test_layout_makes_the_training_tree_and_refuses_removed_hyperparameters(
    tmp_path: Path, guarded_subprocess_env: dict[str, str]
) -> None:
    dataset = tmp_path / "dataset"
    (dataset / "images" / "train").mkdir(parents=True)
    (dataset / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [car]\n")
    opt_ml = tmp_path / "opt_ml"
    args = ["layout", "--dataset", str(dataset), "--opt-ml", str(opt_ml), "--hp", "epochs=3"]
    done = _pipeline(args, guarded_subprocess_env)
    assert done.returncode == 0, done.stderr
    assert json.loads((opt_ml / "input/config/hyperparameters.json").read_text()) == {"epochs": "3"}
    assert list(json.loads((opt_ml / "input/config/inputdataconfig.json").read_text())) == ["dataset"]
    assert (opt_ml / "input/data/dataset/data.yaml").is_file()
    assert all((opt_ml / folder).is_dir() for folder in ("model", "output", "checkpoints"))

    done = _pipeline([*args, "--hp", "tile_size=640"], guarded_subprocess_env)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "error: --hp: hyperparameter 'tile_size' was removed: tile in preprocess (--tile-size), "
        "whose dataset the training step reads"
    )
    missing = _pipeline(
        ["layout", "--dataset", str(tmp_path), "--opt-ml", str(opt_ml)], guarded_subprocess_env
    )
    assert missing.returncode == 1 and "no data.yaml" in missing.stderr


def test_the_pushed_tag_is_recorded_per_registry(tmp_path: Path) -> None:
    record = tmp_path / "pushed-images.json"
    assert pushed_tag("123.dkr.ecr.us-east-1.amazonaws.com", record) == ""
    record_push("123.dkr.ecr.us-east-1.amazonaws.com", "0.1.0-abc", record)
    record_push("registry.example.com/ml/", "0.1.0-def", record)
    assert pushed_tag("123.dkr.ecr.us-east-1.amazonaws.com", record) == "0.1.0-abc"
    assert pushed_tag("registry.example.com/ml", record) == "0.1.0-def"
    assert pushed_tag("another.registry", record) == ""
