"""The SageMaker tuning job: rendered offline from the search space, checked by botocore's own
validation against the SageMaker service model, created in moto, and its metric regexes read the
lines the train command really prints."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from entrypoints.contract import CHECKPOINTS_PER_JOB_ENV, TrainingPaths
from pipeline.__main__ import main
from pipeline.aws import AwsClients
from pipeline.config import load_config
from pipeline.layout import lay_out_training_tree
from pipeline.tuning.sagemaker_job import (
    OBJECTIVE,
    create_tuning_job,
    metric_definitions,
    tuning_job_request,
    validate_request,
)
from pipeline.tuning.space import SEARCH_SPACE
from yolo_core.errors import UserInputError
from yolo_core.model_card import ModelCard

ROOT = Path(__file__).resolve().parent.parent
DATASET_URI = "s3://drone-yolo-dev-123456789012/drone-yolo/executions/e1/Preprocess/dataset"


def _request(**overrides):
    config = load_config("dev")
    arguments = {"job_name": "drone-yolo-dev-t1", "dataset_uri": DATASET_URI, "code_commit": "c0ffee"}
    return config, tuning_job_request(config, **{**arguments, **overrides})


def _ranges(request: dict) -> dict[str, dict]:
    ranges = request["HyperParameterTuningJobConfig"]["ParameterRanges"]
    return {entry["Name"]: entry for kind in ranges.values() for entry in kind}


def test_the_request_is_a_bayesian_search_on_map50_95_over_the_declared_space() -> None:
    config, request = _request()
    validate_request(request)  # botocore's validation against the service model
    tuning = request["HyperParameterTuningJobConfig"]
    assert tuning["Strategy"] == "Bayesian"
    assert tuning["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": OBJECTIVE}
    ranges = _ranges(request)
    assert set(ranges) == set(SEARCH_SPACE.names)
    assert ranges["lr0"]["ScalingType"] == "Logarithmic" and ranges["optimizer"]["Values"] == ["SGD", "AdamW"]
    definition = request["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    assert not set(static) & set(ranges)  # SageMaker refuses a name that is both
    assert static["epochs"] == str(config.training.epochs) and static["tracking_uri"] == "none"
    assert static["model"] == config.training.hyperparameters["model"]
    assert all(isinstance(v, str) for v in static.values())
    spec = definition["AlgorithmSpecification"]
    assert spec["TrainingImage"] == config.images.uri("train")
    assert OBJECTIVE in {m["Name"] for m in spec["MetricDefinitions"]}
    assert definition["InputDataConfig"][0]["ChannelName"] == "dataset"
    assert definition["EnableManagedSpotTraining"] is config.spot.enabled
    # Spot-safe trials: one checkpoint URI for all, each trial's run in a folder of its own.
    assert definition["CheckpointConfig"]["S3Uri"] == config.s3_uri(
        "tuning", "drone-yolo-dev-t1", "checkpoints"
    )
    assert definition["Environment"][CHECKPOINTS_PER_JOB_ENV] == "1"


def test_pipeline_parameters_and_fixed_hyperparameters_reach_every_job() -> None:
    _, request = _request(
        parameters={"Epochs": "7", "UseSpotInstances": "false", "TrainImageTag": "1.2.3"},
        fixed={"batch": "32"},
    )
    definition = request["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"]["epochs"] == "7"
    assert definition["StaticHyperParameters"]["batch"] == "32"
    assert definition["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in definition["StoppingCondition"]
    assert definition["AlgorithmSpecification"]["TrainingImage"].endswith(":1.2.3")


def _no_role(request: dict) -> None:
    request["TrainingJobDefinition"].pop("RoleArn")


def _count_as_text(request: dict) -> None:
    request["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] = "20"


def _undefined_objective(request: dict) -> None:
    request["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"] = "accuracy"


def _misspelt_static(request: dict) -> None:
    request["TrainingJobDefinition"]["StaticHyperParameters"]["lr_0"] = "1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_no_role, "RoleArn"),
        (_count_as_text, "MaxNumberOfTrainingJobs"),
        (_undefined_objective, "no metric definition"),
        (_misspelt_static, "unknown hyperparameter"),
    ],
)
def test_validation_refuses_a_request_sagemaker_would(change, message: str) -> None:
    _, request = _request()
    change(request)
    with pytest.raises(UserInputError, match=message):
        validate_request(request)


def test_a_tuned_name_cannot_also_be_fixed_and_a_bad_name_is_refused() -> None:
    with pytest.raises(UserInputError, match="both fixed and tuned"):
        _request(fixed={"lr0": "0.01"})
    with pytest.raises(UserInputError, match="1-32 letters"):
        _request(job_name="x" * 33)


@pytest.mark.parametrize("value", [0.0, 1.0, 0.5, 0.123456789, 1.23456e-05, 3e-9, 12.5])
def test_the_metric_regex_reads_every_number_the_epoch_line_prints(value: float) -> None:
    line = f"epoch=3 metrics/mAP50B={value * 2:.5g} metrics/mAP50-95B={value:.5g} val/box_loss=1.5"
    regexes = {m["Name"]: m["Regex"] for m in metric_definitions()}
    assert float(re.search(regexes["mAP50-95"], line).group(1)) == float(f"{value:.5g}")
    assert float(re.search(regexes["mAP50"], line).group(1)) == float(f"{value * 2:.5g}")


def test_the_tuning_job_is_created_in_moto(aws_env) -> None:
    config, request = _request()
    sagemaker = AwsClients(config.region).sagemaker
    arn = create_tuning_job(sagemaker, request)
    assert arn.endswith(":hyper-parameter-tuning-job/drone-yolo-dev-t1")
    described = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="drone-yolo-dev-t1")
    assert described["HyperParameterTuningJobConfig"] == request["HyperParameterTuningJobConfig"]
    stored = described["TrainingJobDefinition"]
    assert stored["StaticHyperParameters"] == request["TrainingJobDefinition"]["StaticHyperParameters"]
    assert stored["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions()


def test_the_tune_command_writes_the_definition_offline_and_creates_it(
    aws_env, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "tuning.json"
    common = ["--env", "dev", "--dataset", DATASET_URI, "--trials", "6", "--commit", "c0ffee"]
    with pytest.raises(SystemExit) as done:
        main(["tune", "--definition", *common, "--job-name", "t-offline", "--out", str(out)])
    assert done.value.code == 0
    written = json.loads(out.read_text())
    assert written["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 6
    assert written["TrainingJobDefinition"]["Environment"]["GIT_COMMIT"] == "c0ffee"
    with pytest.raises(SystemExit) as done:
        main(["tune", "--create", *common, "--job-name", "t-created", "-p", "Epochs=3"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip().endswith(":hyper-parameter-tuning-job/t-created")


@pytest.mark.slow
def test_the_metric_definitions_match_what_the_train_command_prints(
    tiny_dataset: Path, tmp_path: Path, guarded_subprocess_env: dict[str, str]
) -> None:
    """Two epochs of the real train command, as a tuning job runs it: the static hyperparameters
    of the request (tracking off, as in dev), one point of the space, and the key SageMaker adds."""
    _, request = _request(parameters={"Epochs": "2", "ImageSize": "160"})
    tuned = {d.name: str(next(iter(d.values_to_check()))) for d in SEARCH_SPACE.dimensions}
    hyperparameters = {
        **request["TrainingJobDefinition"]["StaticHyperParameters"],
        **tuned,
        "batch": "8",
        "plots": "false",
        "_tuning_objective_metric": OBJECTIVE,
    }
    base = lay_out_training_tree(tiny_dataset, tmp_path / "opt_ml", hyperparameters)
    (base / "checkpoints" / "drone-yolo-dev-t1-002-other").mkdir(parents=True)  # another trial's
    trial = {
        **request["TrainingJobDefinition"]["Environment"],
        "TRAINING_JOB_NAME": "drone-yolo-dev-t1-001-ab",
    }
    env = {**guarded_subprocess_env, **trial, "SAGEMAKER_BASE_DIR": str(base), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "entrypoints.train"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    card = ModelCard.load(base / "model")
    assert (base / "checkpoints" / trial["TRAINING_JOB_NAME"] / "run_state.json").is_file()
    assert not any((base / "checkpoints" / "drone-yolo-dev-t1-002-other").iterdir())
    for metric in request["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]:
        values = [float(v) for v in re.findall(metric["Regex"], log)]
        assert len(values) == 2 + 1, (metric, log[-2000:])  # each epoch, then the best weights
        # SageMaker keeps the last value a job emits: the model card's (5 significant digits).
        assert values[-1] == pytest.approx(card.metrics[metric["Name"]], rel=1e-4, abs=1e-6)


def test_a_trial_keeps_its_run_in_a_checkpoint_folder_named_after_its_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CHECKPOINTS_PER_JOB_ENV, raising=False)
    monkeypatch.setenv("TRAINING_JOB_NAME", "t1-001-ab")
    assert TrainingPaths(tmp_path).with_job_checkpoints().checkpoint_dir == tmp_path / "checkpoints"
    monkeypatch.setenv(CHECKPOINTS_PER_JOB_ENV, "1")
    assert (
        TrainingPaths(tmp_path).with_job_checkpoints().checkpoint_dir
        == tmp_path / "checkpoints" / "t1-001-ab"
    )


def test_per_job_checkpoints_without_a_job_name_is_one_line_and_a_failure_file(
    tiny_dataset: Path, tmp_path: Path, guarded_subprocess_env: dict[str, str]
) -> None:
    base = lay_out_training_tree(tiny_dataset, tmp_path / "opt_ml", {"epochs": "1"})
    env = {**guarded_subprocess_env, "SAGEMAKER_BASE_DIR": str(base), CHECKPOINTS_PER_JOB_ENV: "1"}
    env.pop("TRAINING_JOB_NAME", None)
    command = [sys.executable, "-m", "entrypoints.train"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {CHECKPOINTS_PER_JOB_ENV} is set"), (
        done.stderr
    )
    assert "Traceback" not in done.stderr
    assert "TRAINING_JOB_NAME" in (base / "output" / "failure").read_text()
