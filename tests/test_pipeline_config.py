"""Per-environment configs: the bundled ones load, and bad ones fail naming the file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import CONFIG_DIR, ENVIRONMENTS, load_config
from yolo_core.errors import UserInputError

pytestmark = pytest.mark.ci  # in the fast selection the model-build workflow runs


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_bundled_configs_load(env: str) -> None:
    config = load_config(env)
    assert config.name == env
    assert config.s3_uri("raw") == f"s3://{config.bucket}/{config.prefix}/raw"
    assert config.images.uri("train", "v1").endswith("/" + config.images.train + ":v1")


def test_environments_differ_where_they_should() -> None:
    dev, prod = load_config("dev"), load_config("prod")
    assert dev.account != prod.account
    assert dev.spot.enabled and not prod.spot.enabled
    assert prod.thresholds.map50_95 > dev.thresholds.map50_95


def _write(tmp_path: Path, changes: dict, drop: tuple[str, ...] = ()) -> Path:
    raw = yaml.safe_load((CONFIG_DIR / "dev.yaml").read_text())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = raw
        for key in parents:
            node = node[key]
        node[leaf] = value
    for key in drop:
        raw.pop(key)
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"instance_types.train": "g5.xlarge"}, "instance_types.train", "instance type"),
        ({"spot.max_wait_s": 10, "spot.max_run_s": 100}, "spot", "max_wait_s"),
        ({"thresholds.recall": 1.5}, "thresholds.recall", "less than or equal to 1"),
        ({"account": "12345"}, "account", "pattern"),
        ({"roles.execution": "my-role"}, "roles.execution", "IAM role ARN"),
        ({"bucket": "Bad_Bucket"}, "bucket", "bucket name"),
        ({"region": "mars-1"}, "region", "AWS region"),
        ({"training.imgsz": 650}, "training.imgsz", "multiple of 32"),
        ({"training.hyperparameters": {"epochs": "3"}}, "training.hyperparameters", "training.epochs"),
        ({"spot.enabeld": True}, "spot.enabeld", "Extra inputs"),
    ],
)
def test_bad_values_name_the_file_and_field(tmp_path: Path, changes: dict, field: str, words: str) -> None:
    path = _write(tmp_path, changes)
    with pytest.raises(UserInputError) as error:
        load_config(path=path)
    message = str(error.value)
    assert message.startswith(str(path)), message
    assert f"field '{field}" in message and words in message, message


def test_missing_field_is_named(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"field 'thresholds': Field required"):
        load_config(path=_write(tmp_path, {}, drop=("thresholds",)))


def test_unreadable_and_unknown_inputs(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="unknown environment 'qa'"):
        load_config("qa")
    with pytest.raises(UserInputError, match="cannot read the config file"):
        load_config(path=tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: dev\nregion: [unclosed\n")
    with pytest.raises(UserInputError, match="broken.yaml: not valid YAML"):
        load_config(path=broken)
    with pytest.raises(UserInputError, match="field 'name' is 'dev' but environment 'prod'"):
        load_config("prod", path=CONFIG_DIR / "dev.yaml")
