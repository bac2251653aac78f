"""The hyperparameter schema: SageMaker's strings and Python values, with errors naming the field."""

from __future__ import annotations

import json

import pytest

from yolo_core.errors import UserInputError
from yolo_core.hyperparams import Hyperparameters, describe


def test_defaults_are_typed() -> None:
    hp = Hyperparameters()
    assert (hp.model, hp.epochs, hp.imgsz, hp.batch, hp.augment) == ("yolo11n", 100, 640, 16, "aerial")
    assert hp.val is True and hp.augment_overrides == {}


def test_sagemaker_strings_are_parsed() -> None:
    raw = {
        "model": '"yolo11s.yaml"',  # some SDKs JSON-encode strings twice
        "epochs": "30",
        "imgsz": "320",
        "batch": "-1",
        "lr0": "0.002",
        "cos_lr": "True",
        "val": "0",
        "augment_overrides": '{"blur_p": 0.2}',
        "sagemaker_program": "train.py",  # added by the platform, not ours to check
        "_tuning_objective_metric": "mAP50",
    }
    hp = Hyperparameters.from_mapping(raw, source="hyperparameters.json")
    assert hp.model == "yolo11s" and hp.epochs == 30 and hp.imgsz == 320 and hp.batch == -1
    assert hp.lr0 == 0.002 and hp.cos_lr is True and hp.val is False
    assert hp.augment_overrides == {"blur_p": 0.2}


def test_round_trip_through_strings() -> None:
    hp = Hyperparameters(epochs=7, augment_overrides={"haze_p": 0.0}, deterministic=True)
    strings = hp.to_strings()
    assert all(isinstance(v, str) for v in strings.values())
    assert Hyperparameters.from_mapping(json.loads(json.dumps(strings))) == hp


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"epoch": "3"}, "unknown hyperparameter 'epoch' (did you mean 'epochs'?)"),
        ({"epochs": "three"}, "'epochs': 'three' is not a valid int"),
        ({"epochs": "2.5"}, "'epochs': '2.5' is not a valid int"),
        ({"epochs": "0"}, "'epochs': 0 is below the minimum 1"),
        ({"imgsz": "300"}, "'imgsz': 300 is not a multiple of 32"),
        ({"batch": "0"}, "'batch'"),
        ({"model": "yolov8n"}, "'model': 'yolov8n' is not one of yolo11n/s/m/l/x"),
        ({"optimizer": "adam"}, "'optimizer': 'adam' is not one of"),
        ({"precision": "fp8"}, "'precision'"),
        ({"cos_lr": "maybe"}, "'cos_lr': 'maybe' is not a valid bool"),
        ({"augment_overrides": "[1]"}, "'augment_overrides'"),
        ({"tile_size": "640"}, "'tile_size' was removed: tile in preprocess (--tile-size)"),
        ({"tile_overlap": "0.2"}, "'tile_overlap' was removed: tile in preprocess (--tile-overlap)"),
    ],
)
def test_bad_values_name_the_file_and_field(raw: dict, message: str) -> None:
    with pytest.raises(UserInputError) as info:
        Hyperparameters.from_mapping(raw, source="/opt/ml/input/config/hyperparameters.json")
    assert str(info.value).startswith("/opt/ml/input/config/hyperparameters.json: ")
    assert message in str(info.value)


def test_python_callers_get_the_same_checks() -> None:
    with pytest.raises(UserInputError, match="'lr0'"):
        Hyperparameters(lr0=-1.0)
    with pytest.raises(UserInputError, match="'epochs': expected int"):
        Hyperparameters(epochs=[3])  # type: ignore[arg-type]
    assert Hyperparameters(warmup_epochs=1).warmup_epochs == 1.0
    assert Hyperparameters().changed(epochs=5).epochs == 5


def test_describe_lists_every_field() -> None:
    text = describe()
    for name in Hyperparameters.field_names():
        assert f"  {name} " in text
