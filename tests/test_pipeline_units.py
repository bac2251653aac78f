"""Small parts of the pipeline package: parameters, artifact stores, fingerprints, output streaming."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import boto3
import pytest

from pipeline import dag as d
from pipeline.artifacts import LocalArtifactStore, S3ArtifactStore
from pipeline.config import load_config
from pipeline.fingerprint import tree_digest
from pipeline.gate import json_path_get
from pipeline.step_exec import stream_process
from yolo_core.errors import UserInputError


def test_parameter_overrides_are_typed_and_checked() -> None:
    dag = d.build_dag()
    values = d.parse_parameter_overrides(
        dag, ["Epochs=3", "UseSpotInstances=false", "MinRecall=0.5", "TrainImageTag=v2"]
    )
    assert values == {"Epochs": 3, "UseSpotInstances": False, "MinRecall": 0.5, "TrainImageTag": "v2"}
    with pytest.raises(UserInputError, match="parameter Epochs: 'three' is not a valid integer"):
        d.parse_parameter_overrides(dag, ["Epochs=three"])
    with pytest.raises(UserInputError, match="parameter UseSpotInstances: 'maybe' is not true or false"):
        d.parse_parameter_overrides(dag, ["UseSpotInstances=maybe"])
    with pytest.raises(UserInputError, match="unknown pipeline parameter 'Epoch' "):
        d.parse_parameter_overrides(dag, ["Epoch=3"])
    with pytest.raises(UserInputError, match="parameter 'Epochs': expected NAME=VALUE"):
        d.parse_parameter_overrides(dag, ["Epochs"])


@pytest.mark.parametrize(
    ("item", "allowed"),
    [
        ("Epochs=-5", "at least 1"),
        ("Epochs=0", "at least 1"),
        ("ImageSize=16", "at least 32"),
        ("MinRecall=1.5", "[0, 1]"),
        ("MinPrecision=-0.1", "[0, 1]"),
        ("MinMap50To95=nan", "[0, 1]"),
    ],
)
def test_count_and_threshold_parameters_are_range_checked(item: str, allowed: str) -> None:
    name = item.partition("=")[0]
    expected = rf"parameter {name}: .* is out of range \(allowed: {re.escape(allowed)}\)"
    with pytest.raises(UserInputError, match=expected):
        d.parse_parameter_overrides(d.build_dag(), [item])
    assert d.parse_parameter_overrides(d.build_dag(), {"Epochs": 1, "MinRecall": 1})["MinRecall"] == 1.0


def test_every_gate_has_a_check_a_fail_step_and_a_parameter() -> None:
    config = load_config("prod")
    dag = d.build_dag(config)
    assert dict(dag.step(d.TRAIN).hyperparameters)["model"] == config.training.hyperparameters["model"]
    for gate in d.GATES:
        check = dag.step("Check" + gate.threshold_param.removeprefix("Min"))
        assert isinstance(check, d.ConditionStep) and check.right.name == gate.threshold_param
        assert isinstance(dag.step(check.on_fail), d.FailStep)
        assert dag.param(gate.threshold_param).kind == "float"


def test_json_path_get_names_what_is_missing() -> None:
    document = {"metrics": {"map50": {"value": 0.5}}}
    assert json_path_get(document, "metrics.map50.value") == 0.5
    with pytest.raises(UserInputError, match=r"no value at 'metrics.recall.value' \(missing 'recall'\)"):
        json_path_get(document, "metrics.recall.value")


def test_tree_digest_follows_content_not_timestamps(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("one")
    first = tree_digest(tmp_path)
    os.utime(tmp_path / "a" / "x.txt", (1, 1))
    assert tree_digest(tmp_path) == first
    (tmp_path / "a" / "x.txt").write_text("two")
    assert tree_digest(tmp_path) != first


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "store")
    request.getfixturevalue("aws_env")
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="artifact-test-bucket")
    return S3ArtifactStore("s3://artifact-test-bucket/runs", client)


def test_artifact_store_round_trip(store, tmp_path: Path) -> None:
    source = tmp_path / "out"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    (source / "card.json").write_text("{}")
    assert store.read_manifest("Train", "k1") is None
    location = store.put_dir(source, "Train", "k1", "model")
    store.write_manifest("Train", "k1", {"outputs": {"model": location}})
    assert store.read_manifest("Train", "k1") == {"outputs": {"model": location}}
    copy = store.get_dir(location, tmp_path / "copy")
    assert (copy / "sub" / "weights.bin").read_bytes() == b"\x00\x01"
    assert tree_digest(copy) == tree_digest(source)


def test_streamed_output_thins_progress_bars(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "for i in range(200): sys.stdout.write(f'\\r{i//2}%|##| {i}/200'); sys.stdout.flush()\n"
        "print()\nprint('done: 3 lines')\nsys.exit(3)\n"
    )
    shown: list[str] = []
    result = stream_process(
        [sys.executable, "-c", script], dict(os.environ), tmp_path, tmp_path / "log.txt", shown.append
    )
    assert result.returncode == 3
    assert shown[-1] == "done: 3 lines" and result.tail[-1] == "done: 3 lines"
    assert 1 <= sum("%|" in line for line in shown) <= 3  # not 200
    assert (tmp_path / "log.txt").read_text().splitlines()[0].startswith("$ ")
