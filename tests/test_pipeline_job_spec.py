"""What a job step is told (`pipeline.job_spec`): a pure function of the declared step and what the
run knows so far, checked without running anything, touching S3 or opening MLflow."""

from __future__ import annotations

import pytest

from pipeline import dag as d
from pipeline.config import load_config
from pipeline.job_key import cache_key
from pipeline.job_spec import RunValues, job_spec, locate_output_input

CONFIG = load_config("dev")
DAG = d.build_dag(CONFIG)
PARAMS = DAG.defaults(CONFIG)
DONE = RunValues(
    params=PARAMS,
    image_uris={"preprocess": "reg/pre:1", "train": "reg/train:1", "inference": "reg/inf:1"},
    outputs={"Preprocess": {"dataset": "/store/pre/k1/dataset", "baseline": "/store/pre/k1/baseline"}},
    keys={"Preprocess": "k1"},
    properties={"RegisterModel": {"ModelPackageArn": "arn:aws:sagemaker:model-package/x/3"}},
)


def _located(step: d.ProcessingStep | d.TrainingStep) -> dict[str, tuple[str, str]]:
    inputs = step.inputs if isinstance(step, d.ProcessingStep) else step.channels
    return {item.name: locate_output_input(item, DONE) for item in inputs}


def test_an_output_input_is_fingerprinted_by_the_cache_key_of_the_step_that_made_it() -> None:
    feature_store = DAG.step(d.FEATURE_STORE)
    located = _located(feature_store)
    assert located["baseline"] == ("/store/pre/k1/baseline", "k1/baseline")
    # One file of an output: the location and the fingerprint both name the file.
    assert located["manifest"] == ("/store/pre/k1/dataset/dataset.json", "k1/dataset/dataset.json")
    spec = job_spec(feature_store, located, DONE, extra_arguments=["--feature-group", ""])
    assert spec.files == ("manifest",)
    assert spec.arguments[-2:] == ("--feature-group", "")


def test_processing_arguments_resolve_parameters_images_outputs_and_properties() -> None:
    mirror = DAG.step("MlflowMirror")
    values = RunValues(
        PARAMS,
        DONE.image_uris,
        {**DONE.outputs, "Train": {"model": "/m"}, "Evaluate": {"evaluation": "/e"}},
        {**DONE.keys, "Train": "k2", "Evaluate": "k3"},
        DONE.properties,
    )
    spec = job_spec(mirror, {"model": ("/m", "k2/model"), "evaluation": ("/e", "k3/evaluation")}, values)
    told = dict(zip(spec.arguments[::2], spec.arguments[1::2], strict=False))
    assert told["--model-package-arn"] == "arn:aws:sagemaker:model-package/x/3"
    assert told["--dataset-location"] == "/store/pre/k1/dataset"
    assert "reg/train:1" in spec.arguments and "reg/inf:1" in spec.arguments
    assert spec.hyperparameters == {}


def test_training_hyperparameters_are_the_declared_parameters_with_the_runs_overrides() -> None:
    train = DAG.step(d.TRAIN)
    values = RunValues({**PARAMS, "Epochs": 7}, DONE.image_uris, DONE.outputs, DONE.keys)
    spec = job_spec(train, _located(train), values, {"imgsz": "96", "seed": "3"})
    assert spec.hyperparameters["epochs"] == "7"
    assert spec.hyperparameters["imgsz"] == "96" and spec.hyperparameters["seed"] == "3"
    assert spec.arguments == ()
    assert spec.tracking_params()["hp.epochs"] == "7"
    assert spec.tracking_params()["input.dataset"] == "/store/pre/k1/dataset"


def test_where_inputs_live_does_not_change_the_key_but_what_they_hold_does() -> None:
    train = DAG.step(d.TRAIN)
    here = job_spec(train, {"dataset": ("/a/dataset", "k1/dataset")}, DONE)
    moved = job_spec(train, {"dataset": ("s3://b/dataset", "k1/dataset")}, DONE)
    changed = job_spec(train, {"dataset": ("/a/dataset", "k9/dataset")}, DONE)
    assert cache_key(train, "code", here) == cache_key(train, "code", moved)
    assert cache_key(train, "code", here) != cache_key(train, "code", changed)


def test_a_step_that_has_not_run_cannot_be_read_from() -> None:
    evaluate = DAG.step(d.EVALUATE)
    with pytest.raises(KeyError, match="Train"):
        _located(evaluate)
