"""The SageMaker rendering of the DAG: golden definition, its shape, and upsert/start against moto.

Regenerate the golden file after an intended change with:
    python -m pipeline definition --env dev --commit golden --out tests/golden/pipeline_dev.json
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import dag as d
from pipeline.config import load_config
from pipeline.local_runner import LocalRunner, LocalRunSettings, local_plan
from pipeline.sagemaker_render import ON_DEMAND_SUFFIX, SPOT_CONDITION, definition, start, step_names, upsert
from yolo_core.errors import UserInputError

GOLDEN = Path(__file__).parent / "golden" / "pipeline_dev.json"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dev_definition() -> dict:
    return definition(load_config("dev"), code_commit="golden")


def _steps_by_name(document: dict) -> dict[str, dict]:
    found, stack = {}, list(document["Steps"])
    while stack:
        step = stack.pop()
        found[step["Name"]] = step
        stack.extend(
            step.get("Arguments", {}).get("IfSteps", []) + step.get("Arguments", {}).get("ElseSteps", [])
        )
    return found


def test_definition_matches_golden(dev_definition: dict) -> None:
    golden = json.loads(GOLDEN.read_text())
    assert dev_definition == golden, f"definition changed; if intended, regenerate {GOLDEN} (see module doc)"


def test_every_declared_step_is_rendered_in_both_capacity_branches(dev_definition: dict) -> None:
    names = set(step_names(dev_definition))
    dag = d.build_dag(load_config("dev"))
    shared = {step.name for step in dag.shared()}
    assert shared == {d.PREPROCESS, d.FEATURE_STORE}  # they need nothing of training
    for step in dag.steps:
        assert step.name in names
        assert (step.name + ON_DEMAND_SUFFIX in names) == (step.name not in shared)
    params = {p["Name"]: p for p in dev_definition["Parameters"]}
    assert set(params) == {p.name for p in dag.parameters}
    assert params["UseSpotInstances"]["Type"] == "Boolean" and params["Epochs"]["Type"] == "Integer"


def test_both_renderers_run_the_same_steps(dev_definition: dict) -> None:
    """One DAG, two renderers: the SageMaker definition (either capacity branch) and the local
    runner's plan hold the same steps, the feature-store write and the MLflow mirror included."""
    rendered = [name for name in step_names(dev_definition) if name != SPOT_CONDITION]
    spot = {name for name in rendered if not name.endswith(ON_DEMAND_SUFFIX)}
    on_demand = {name.removesuffix(ON_DEMAND_SUFFIX) for name in rendered if name.endswith(ON_DEMAND_SUFFIX)}
    local = local_plan(d.build_dag(load_config("dev")))
    assert len(local) == len(set(local))
    assert spot == set(local)
    assert on_demand | {d.PREPROCESS, d.FEATURE_STORE} == set(local)
    assert {d.FEATURE_STORE, d.MLFLOW_MIRROR} <= set(local)


def test_tracking_uri_reaches_training_and_the_mirror_follows_register(dev_definition: dict) -> None:
    config = load_config("dev")
    params = {p["Name"]: p for p in dev_definition["Parameters"]}
    assert params["MlflowTrackingUri"]["DefaultValue"] == config.mlflow_tracking_uri
    assert params["MlflowExperiment"]["DefaultValue"] == config.experiment_name
    steps = _steps_by_name(dev_definition)
    for suffix in ("", ON_DEMAND_SUFFIX):
        hyperparameters = steps[d.TRAIN + suffix]["Arguments"]["HyperParameters"]
        for key, param in (("tracking_uri", "MlflowTrackingUri"), ("experiment_name", "MlflowExperiment")):
            assert hyperparameters[key]["Std:Join"]["Values"] == [{"Get": f"Parameters.{param}"}]
        mirror = steps[d.MLFLOW_MIRROR + suffix]["Arguments"]["AppSpecification"]
        arguments = mirror["ContainerArguments"]
        assert mirror["ContainerEntrypoint"] == ["dumb-init", "--", "register_mirror"]
        after = arguments[arguments.index("--model-package-arn") + 1]
        assert after == {"Get": f"Steps.{d.REGISTER + suffix}.ModelPackageArn"}
        # The mirror runs only where Register does: beside it in the last check's if-branch.
        last_check = steps["CheckRecall" + suffix]["Arguments"]["IfSteps"]
        assert [s["Name"] for s in last_check] == [d.REGISTER + suffix, d.MLFLOW_MIRROR + suffix]


def test_training_instance_count_is_a_parameter_the_local_runner_keeps_at_one(
    dev_definition: dict, tmp_path: Path
) -> None:
    """Several instances train together on SageMaker (one torchrun node each); a local run has one host."""
    count = {p["Name"]: p for p in dev_definition["Parameters"]}["TrainInstanceCount"]
    assert (count["Type"], count["DefaultValue"]) == ("Integer", 1)
    steps = _steps_by_name(dev_definition)
    for suffix in ("", ON_DEMAND_SUFFIX):
        resources = steps[d.TRAIN + suffix]["Arguments"]["ResourceConfig"]
        assert resources["InstanceCount"] == {"Get": "Parameters.TrainInstanceCount"}
    with pytest.raises(UserInputError, match="out of range"):
        d.parse_parameter_overrides(d.build_dag(load_config("dev")), ["TrainInstanceCount=0"])
    settings = LocalRunSettings(
        config=load_config("dev"),
        work_dir=tmp_path / "work",
        parameters={"InputDataUri": str(tmp_path), "TrainInstanceCount": 2},
    )
    with pytest.raises(UserInputError, match="TrainInstanceCount: 2; the local runner trains on one host"):
        LocalRunner(settings)
    assert not (tmp_path / "work").exists()  # refused before anything was written


def test_feature_store_step_reads_the_baseline_beside_training(dev_definition: dict) -> None:
    config = load_config("dev")
    assert [s["Name"] for s in dev_definition["Steps"]] == [d.PREPROCESS, d.FEATURE_STORE, SPOT_CONDITION]
    step = _steps_by_name(dev_definition)[d.FEATURE_STORE]["Arguments"]
    app = step["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["dumb-init", "--", "feature_store"]
    arguments = app["ContainerArguments"]
    assert arguments[arguments.index("--feature-group") + 1] == config.feature_store.feature_group
    inputs = {i["InputName"]: i["S3Input"] for i in step["ProcessingInputs"]}
    dataset = "Steps.Preprocess.ProcessingOutputConfig.Outputs['dataset'].S3Output.S3Uri"
    assert inputs["manifest"]["S3Uri"]["Std:Join"]["Values"] == [{"Get": dataset}, "dataset.json"]
    assert inputs["baseline"]["LocalPath"] == "/opt/ml/processing/input/baseline"


def test_spot_branch_has_checkpoints_max_wait_and_retries(dev_definition: dict) -> None:
    steps = _steps_by_name(dev_definition)
    spot, on_demand = steps[d.TRAIN]["Arguments"], steps[d.TRAIN + ON_DEMAND_SUFFIX]["Arguments"]
    assert spot["EnableManagedSpotTraining"] is True
    assert (
        spot["StoppingCondition"]["MaxWaitTimeInSeconds"] >= spot["StoppingCondition"]["MaxRuntimeInSeconds"]
    )
    assert spot["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert "checkpoints" in spot["CheckpointConfig"]["S3Uri"]["Std:Join"]["Values"]
    # SageMaker rejects MaxWaitTimeInSeconds on on-demand jobs.
    assert on_demand["EnableManagedSpotTraining"] is False
    assert "MaxWaitTimeInSeconds" not in on_demand["StoppingCondition"]
    retry_types = {t for policy in steps[d.TRAIN]["RetryPolicies"] for t in policy["ExceptionType"]}
    assert {"SageMaker.CAPACITY_ERROR", "Step.THROTTLING"} <= retry_types
    assert spot["HyperParameters"]["epochs"] == {
        "Std:Join": {"On": "", "Values": [{"Get": "Parameters.Epochs"}]}
    }


def test_jobs_record_their_image_and_processing_keeps_the_init(dev_definition: dict) -> None:
    """Every job's environment names the image it ran (tracked with its metrics), and a
    Processing job's ContainerEntrypoint, which replaces the image's ENTRYPOINT, keeps dumb-init
    in front so that a stop's SIGTERM reaches the command."""
    steps = _steps_by_name(dev_definition)
    for name in (d.PREPROCESS, d.EVALUATE, d.TRAIN, d.TRAIN + ON_DEMAND_SUFFIX):
        arguments = steps[name]["Arguments"]
        environment = arguments["Environment"]
        image = environment["IMAGE_URI"]["Std:Join"]
        assert environment["GIT_COMMIT"] == "golden"
        assert image["On"] == ":" and image["Values"][1]["Get"].endswith("ImageTag")
        if steps[name]["Type"] == "Processing":
            app = arguments["AppSpecification"]
            assert app["ContainerEntrypoint"][:2] == ["dumb-init", "--"]
            assert image == app["ImageUri"]["Std:Join"]
        else:
            assert image == arguments["AlgorithmSpecification"]["TrainingImage"]["Std:Join"]


def test_gate_reads_the_property_file_and_fail_steps_name_the_metric(dev_definition: dict) -> None:
    steps = _steps_by_name(dev_definition)
    assert steps[d.EVALUATE]["PropertyFiles"] == [
        {"PropertyFileName": "EvaluationReport", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]
    for gate in d.GATES:
        check = steps["Check" + gate.threshold_param.removeprefix("Min")]["Arguments"]
        condition = check["Conditions"][0]
        assert condition["Type"] == "GreaterThanOrEqualTo"
        assert condition["LeftValue"]["Std:JsonGet"]["Path"] == f"metrics.{gate.metric}.value"
        assert condition["RightValue"] == {"Get": f"Parameters.{gate.threshold_param}"}
        fail = check["ElseSteps"][0]
        assert fail["Type"] == "Fail"
        assert fail["Arguments"]["ErrorMessage"]["Std:Join"]["Values"][0] == f"{gate.label} "


def test_register_step_is_pending_with_metrics_attached(dev_definition: dict) -> None:
    register = _steps_by_name(dev_definition)[d.REGISTER]["Arguments"]
    assert register["ModelApprovalStatus"] == "PendingManualApproval"
    assert register["ModelPackageGroupName"] == load_config("dev").model_package_group
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert "evaluation.json" in statistics["S3Uri"]["Std:Join"]["Values"]
    container = register["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert {"Get": "Parameters.InferenceImageTag"} in container["Image"]["Std:Join"]["Values"]


def test_cli_writes_the_same_definition(tmp_path: Path, guarded_subprocess_env: dict) -> None:
    out = tmp_path / "definition.json"
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "definition",
        "--env",
        "dev",
        "--commit",
        "golden",
        "--out",
        str(out),
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=guarded_subprocess_env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == json.loads(GOLDEN.read_text())


def test_cli_bad_environment_is_one_line(guarded_subprocess_env: dict) -> None:
    command = [sys.executable, "-m", "pipeline", "definition", "--env", "qa"]
    done = subprocess.run(
        command, cwd=ROOT, env=guarded_subprocess_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "error: unknown environment 'qa': choose one of dev, staging, prod"


def test_upsert_and_start_against_moto(aws_env) -> None:
    import boto3

    config = load_config("dev")
    arn = upsert(config, code_commit="test")
    assert arn.endswith(f":pipeline/{config.pipeline_name}")
    assert upsert(config, code_commit="test2") == arn  # the second call updates
    client = boto3.client("sagemaker", region_name=config.region)
    described = client.describe_pipeline(PipelineName=config.pipeline_name)
    assert described["RoleArn"] == config.roles.pipeline
    stored = json.loads(described["PipelineDefinition"])
    assert {"Preprocess", "Train", "TrainOnDemand", "RegisterModel"} <= set(step_names(stored))
    assert stored["Steps"][0]["Arguments"]["Environment"]["GIT_COMMIT"] == "test2"

    execution = start(config, {"Epochs": 3, "UseSpotInstances": False}, display_name="smoke")
    assert execution.startswith(arn + "/execution/")
    executions = client.list_pipeline_executions(PipelineName=config.pipeline_name)[
        "PipelineExecutionSummaries"
    ]
    assert [e["PipelineExecutionArn"] for e in executions] == [execution]
    status = client.describe_pipeline_execution(PipelineExecutionArn=execution)["PipelineExecutionStatus"]
    assert status in {"Executing", "Succeeded"}
