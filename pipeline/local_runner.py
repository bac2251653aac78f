"""Run the declared DAG on this machine: the same steps, the same contracts, cached.

Each job step runs through its entrypoint (a subprocess, or its image with `docker=True`) in a
private /opt/ml tree; its outputs go to the artifact store (a folder or S3) under a cache key made
of its inputs, arguments, hyperparameters and code. A step whose key is already in the store is
not run again, except service steps (FeatureStore, MlflowMirror), which talk to AWS and MLflow and
always run, on the host. The quality gate reads evaluation.json with the same JSON paths as the
SageMaker PropertyFile, and either registers the model (SageMaker model package, pending approval,
then the MlflowMirror step) or ends the run with the Fail step's message. MLflow gets a parent run
with one child per step.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from entrypoints.contract import (
    ProcessingPaths,
    TrainingPaths,
    processing_message_file,
    write_training_config,
)
from pipeline import dag as d
from pipeline.artifacts import ArtifactStore, download_s3_prefix, open_store, split_s3_uri
from pipeline.aws import AwsClients
from pipeline.config import EnvConfig
from pipeline.fingerprint import code_digest, s3_digest, tree_digest
from pipeline.gate import GateResult, as_string, evaluate_gate
from pipeline.job_key import cache_key
from pipeline.job_spec import JobSpec, RunValues, job_inputs, job_spec, locate_output_input
from pipeline.local_images import resolve_local_image
from pipeline.registry import (
    ModelRegistry,
    MonitoringBaselines,
    Provenance,
    RegisteredModel,
    evaluation_metrics,
)
from pipeline.step_exec import StepProcessResult, docker_image_id, run_step_in_docker, run_step_subprocess
from pipeline.tracking import PipelineTracking, default_tracking_uri
from yolo_core.data.dataset import BASELINE_FILE
from yolo_core.errors import UserInputError
from yolo_core.monitoring.constraints import CONSTRAINTS_FILE
from yolo_core.redact import redact_uri
from yolo_core.version import git_commit


class StepFailed(RuntimeError):
    """A step's entrypoint exited non-zero; the message is its one-line reason."""

    def __init__(self, step: str, reason: str, log_file: Path | None = None) -> None:
        super().__init__(f"step {step} failed: {reason}" + (f" (log: {log_file})" if log_file else ""))
        self.step, self.reason, self.log_file = step, reason, log_file


@dataclass
class StepRecord:
    step: str
    kind: str
    status: str  # "ran", "cached", "passed", "failed", "registered"
    seconds: float = 0.0
    cache_key: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    mlflow_run_id: str = ""
    log_file: str = ""
    detail: str = ""


@dataclass
class LocalRunResult:
    status: str  # "Succeeded" or "Failed"
    parameters: dict[str, Any]
    records: list[StepRecord]
    tracking_uri: str
    parent_run_id: str
    store: str
    failure: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    registered: RegisteredModel | None = None
    features: dict[str, str] = field(default_factory=dict)

    def record(self, step: str) -> StepRecord:
        return next(r for r in self.records if r.step == step)


@dataclass
class LocalRunSettings:
    config: EnvConfig
    work_dir: Path
    store: str = ""  # a folder or s3://bucket/prefix; default <work_dir>/artifacts
    parameters: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, str] = field(default_factory=dict)  # fixed values for this run
    tracking_uri: str = ""  # default: sqlite in work_dir
    experiment: str = ""  # default: the pipeline name
    docker: bool = False
    gpus: bool = False  # docker mode: pass every GPU (falls back to the CPU without a GPU runtime)
    register: bool = True  # needs AWS (or moto) for the SageMaker half
    feature_store: bool = True  # Parquet always; the S3 offline store and feature group need AWS
    audit_log: Path | None = None
    env: dict[str, str] | None = None  # environment of the step processes
    emit: Callable[[str], None] = lambda line: print(line, flush=True)  # progress shows when piped too


class LocalRunner:
    def __init__(self, settings: LocalRunSettings, dag: d.Dag | None = None) -> None:
        self.settings = settings
        self.config = settings.config
        self.dag = dag or d.build_dag(self.config)
        overrides = d.parse_parameter_overrides(self.dag, settings.parameters)
        self.params = {**self.dag.defaults(self.config), **overrides}
        self._check_local_inputs()  # before anything is written: no work dir, no MLflow run
        self._check_one_training_host()
        self.work_dir = Path(settings.work_dir).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.aws = AwsClients(self.config.region)
        self.store: ArtifactStore = open_store(
            settings.store or str(self.work_dir / "artifacts"), lambda: self.aws.s3
        )
        self.tracking_uri = settings.tracking_uri or default_tracking_uri(self.work_dir)
        self.tracking = PipelineTracking(
            self.tracking_uri,
            settings.experiment or self.config.pipeline_name,
            self.work_dir / "mlflow-artifacts",
        )
        # The registry's mirror logs where this run logs (the training step too, unless in Docker).
        local = {"MlflowTrackingUri": self.tracking_uri, "MlflowExperiment": self.tracking.experiment}
        self.params.update({k: v for k, v in local.items() if k not in overrides})
        self.properties: dict[str, dict[str, str]] = {}  # step -> property -> value (ModelPackageArn)
        self.outputs: dict[str, dict[str, str]] = {}  # step -> output -> location
        self.keys: dict[str, str] = {}  # step -> cache key
        self.records: list[StepRecord] = []
        self.emit = settings.emit

    # -- values ------------------------------------------------------------------------------
    def image_uri(self, image: str) -> str:
        return self.config.images.uri(image, self.params[d.IMAGE_TAG_PARAMS[image]])

    def run_image(self, image: str) -> str:
        """The local image a docker-mode step runs: the config's name, or what `make build` tagged."""
        return resolve_local_image(self.config.images, image, str(self.params[d.IMAGE_TAG_PARAMS[image]]))

    def in_docker(self, step: d.ProcessingStep | d.TrainingStep) -> bool:
        """Service steps run on the host, where the tracking store and the AWS endpoint are."""
        return self.settings.docker and not (isinstance(step, d.ProcessingStep) and step.service)

    def values(self) -> RunValues:
        """What the DAG's references resolve to now (steps done so far)."""
        tagged = [image for image, param in d.IMAGE_TAG_PARAMS.items() if param in self.params]
        images = {image: self.image_uri(image) for image in tagged}  # the DAG's own images
        return RunValues(self.params, images, self.outputs, self.keys, self.properties)

    def _local_input(self, name: str) -> Path | None:
        """The local path a parameter names (None for an s3:// URI); it must exist."""
        uri = str(self.params[name])
        if uri.startswith("s3://"):
            return None
        path = Path(uri.removeprefix("file://")).expanduser().resolve()
        if not path.exists():
            raise UserInputError(f"parameter {name}: {uri} does not exist")
        return path

    def _check_local_inputs(self) -> None:
        for step in self.dag.steps:
            for item in job_inputs(step):
                if isinstance(item.source, d.ParamRef):
                    self._local_input(item.source.name)

    def _check_one_training_host(self) -> None:
        """One host tree per training job here: several hosts are SageMaker's to provide (the
        train command's two-host test lays out two trees itself, tests/test_train_distributed.py)."""
        for step in self.dag.steps:
            if isinstance(step, d.TrainingStep) and int(self.params[step.instance_count.name]) > 1:
                raise UserInputError(
                    f"parameter {step.instance_count.name}: {self.params[step.instance_count.name]}; "
                    "the local runner trains on one host; run with 1 here, or several on SageMaker"
                )

    def _input_location(self, item: d.Input, values: RunValues) -> tuple[str, str]:
        """(location, fingerprint) of a step input; a parameter's folder or S3 prefix is read."""
        if isinstance(item.source, d.OutputRef):
            return locate_output_input(item, values)
        path = self._local_input(item.source.name)
        if path is None:
            uri = str(self.params[item.source.name])
            return uri, s3_digest(self.aws.s3, uri)
        return str(path), tree_digest(path)

    def _stage(self, location: str, target: Path, one_file: bool = False) -> None:
        target.mkdir(parents=True, exist_ok=True)
        name = location.rstrip("/").rsplit("/", 1)[-1]
        if one_file and location.startswith("s3://"):
            self.aws.s3.download_file(*split_s3_uri(location), str(target / name))
        elif one_file:
            shutil.copy2(location, target / name)
        elif location.startswith("s3://"):
            download_s3_prefix(self.aws.s3, location, target)
        else:
            shutil.copytree(location, target, dirs_exist_ok=True)

    def _local_copy(self, location: str, scratch: Path) -> Path:
        """A local folder with the artifact's content (the store's own folder when it is local)."""
        if not location.startswith("s3://"):
            return Path(location)
        return download_s3_prefix(self.aws.s3, location, scratch)

    # -- job steps ---------------------------------------------------------------------------
    def _job_spec(self, step: d.ProcessingStep | d.TrainingStep) -> JobSpec:
        values = self.values()
        located = {item.name: self._input_location(item, values) for item in job_inputs(step)}
        extra = self._local_arguments(step) if isinstance(step, d.ProcessingStep) else []
        return job_spec(step, located, values, self.settings.hyperparameters, extra)

    def _local_arguments(self, step: d.ProcessingStep) -> list[str]:
        """Without AWS (`register=False`) the feature store writes its Parquet files only."""
        if step.name == d.FEATURE_STORE and not self.settings.register:
            return ["--feature-group", ""]
        return []

    def _code_fingerprint(self, step: d.ProcessingStep | d.TrainingStep) -> str:
        if self.in_docker(step):
            return docker_image_id(self.run_image(step.image))
        return code_digest(step.entrypoint)

    def run_job(self, step: d.ProcessingStep | d.TrainingStep) -> StepRecord:
        spec = self._job_spec(step)
        key = self.keys[step.name] = cache_key(step, self._code_fingerprint(step), spec)
        service = isinstance(step, d.ProcessingStep) and step.service
        manifest = None if service else self.store.read_manifest(step.name, key)
        record = self._reuse(step, spec, key, manifest) if manifest else self._run_fresh(step, spec, key)
        self.outputs[step.name] = record.outputs
        return record

    def _reuse(self, step: d.Step, spec: JobSpec, key: str, manifest: dict[str, Any]) -> StepRecord:
        tags = {"cached": "true", "cache_key": key, "made_by_run": manifest.get("mlflow_run_id", "")}
        run_id = self.tracking.child(step.name, spec.tracking_params(), tags)
        self.tracking.finish(run_id)
        self.emit(f"[{step.name}] cached ({key}): outputs in {self.store.location(step.name, key)}")
        detail = f"cached from {manifest.get('finished', '?')}"
        return StepRecord(
            step.name, type(step).__name__, "cached", 0.0, key, manifest["outputs"], run_id, detail=detail
        )

    def _run_fresh(self, step: d.ProcessingStep | d.TrainingStep, spec: JobSpec, key: str) -> StepRecord:
        started = time.monotonic()
        log_file = self.work_dir / "logs" / f"{step.name}-{key}.log"
        self.emit(f"[{step.name}] running {step.entrypoint} (cache key {key})")
        with tempfile.TemporaryDirectory(prefix=f"{step.name.lower()}-", dir=self.work_dir) as scratch:
            produced = self._execute(step, spec, Path(scratch) / "opt-ml", log_file)
            outputs = {
                name: self.store.put_dir(path, step.name, key, name) for name, path in produced.items()
            }
            run_id = self._step_run(step, spec, key, produced)
        seconds = time.monotonic() - started
        finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        manifest = {
            "step": step.name,
            "outputs": outputs,
            "seconds": round(seconds, 1),
            "mlflow_run_id": run_id,
        }
        self.store.write_manifest(
            step.name, key, {**manifest, "finished": finished}
        )  # last: marks it complete
        self.emit(f"[{step.name}] done in {seconds:.0f} s: outputs in {self.store.location(step.name, key)}")
        return StepRecord(step.name, type(step).__name__, "ran", seconds, key, outputs, run_id, str(log_file))

    def _execute(
        self, step: d.ProcessingStep | d.TrainingStep, spec: JobSpec, base: Path, log: Path
    ) -> dict[str, Path]:
        """Lay out the /opt/ml tree, run the step, and return its output folders."""
        if isinstance(step, d.ProcessingStep):
            processing = ProcessingPaths.under(base)
            for name, location in spec.inputs.items():
                self._stage(location, processing.input(name), one_file=name in spec.files)
            outputs = {name: processing.output(name) for name in step.outputs}
            arguments = list(spec.arguments)
            failure_file = processing_message_file(base)
        else:
            training = TrainingPaths(base)
            for name, location in spec.inputs.items():
                self._stage(location, training.channel(name))
            hyperparameters = {**spec.hyperparameters, **self._tracking_hyperparameters(step)}
            write_training_config(training, hyperparameters, list(spec.inputs))
            outputs = {"model": training.model_dir}
            arguments = []
            failure_file = training.failure_file
        for folder in outputs.values():
            folder.mkdir(parents=True, exist_ok=True)
        result = self._launch(step, arguments, base, log)
        if result.returncode != 0:
            reason = failure_file.read_text().strip() if failure_file.is_file() else ""
            raise StepFailed(
                step.name, reason or (result.tail[-1] if result.tail else f"exit {result.returncode}"), log
            )
        return outputs

    def _tracking_hyperparameters(self, step: d.TrainingStep) -> dict[str, str]:
        if self.settings.docker:  # the container cannot reach a host sqlite file: it keeps its own
            return {"tracking_uri": ""}  # (no network in the container: sqlite in its checkpoints)
        return {
            "tracking_uri": self.tracking_uri,
            "experiment_name": self.tracking.experiment,
            "run_name": step.name,
        }

    def _launch(
        self, step: d.ProcessingStep | d.TrainingStep, arguments: list[str], base: Path, log: Path
    ) -> StepProcessResult:
        def show(line: str) -> None:
            self.emit(f"  {step.name} | {line}")

        extra_env = {"GIT_COMMIT": git_commit(), "IMAGE_URI": self.image_uri(step.image)}
        if isinstance(step, d.ProcessingStep) and step.service:  # this process's AWS (a moto server)
            extra_env |= {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        if self.in_docker(step):
            image = self.run_image(step.image)
            gpus = self.settings.gpus
            return run_step_in_docker(image, step.entrypoint, arguments, base, log, show, extra_env, gpus)
        return run_step_subprocess(step.entrypoint, arguments, base, log, show, self.settings.env, extra_env)

    def _step_run(
        self,
        step: d.ProcessingStep | d.TrainingStep,
        spec: JobSpec,
        key: str,
        produced: dict[str, Path],
    ) -> str:
        """The step's MLflow child run: the trainer's own run when there is one, else a new run."""
        tags = {
            "cached": "false",
            "cache_key": key,
            **{f"output.{k}": self.store.location(step.name, key, k) for k in produced},
        }
        # In docker mode the trainer's MLflow run lives in the container's own store, not ours.
        adopt_trainer_run = isinstance(step, d.TrainingStep) and not self.in_docker(step)
        trainer_run = self._trainer_run_id(produced.get("model")) if adopt_trainer_run else ""
        if trainer_run:
            self.tracking.adopt(trainer_run, step.name, tags)
            return trainer_run
        run_id = self.tracking.child(step.name, spec.tracking_params(), tags)
        if "evaluation" in produced:
            evaluation = json.loads((produced["evaluation"] / d.EVALUATION_FILE).read_text())
            self.tracking.log_metrics(run_id, evaluation_metrics(evaluation))
            self.tracking.log_artifacts(run_id, produced["evaluation"], "evaluation")
        self.tracking.finish(run_id)
        return run_id

    @staticmethod
    def _trainer_run_id(model_dir: Path | None) -> str:
        card = model_dir / "model.json" if model_dir else None
        if card is None or not card.is_file():
            return ""
        return str(json.loads(card.read_text()).get("extra", {}).get("mlflow_run_id", ""))

    # -- gate, fail, register ----------------------------------------------------------------
    def evaluation(self) -> dict[str, Any]:
        with tempfile.TemporaryDirectory(dir=self.work_dir) as scratch:
            folder = self._local_copy(self.outputs[d.EVALUATE]["evaluation"], Path(scratch))
            return json.loads((folder / d.EVALUATION_FILE).read_text())

    def run_gate(self, evaluation: dict[str, Any]) -> GateResult:
        """The gate's decision (`pipeline.gate`), recorded, tagged on the parent run and shown."""
        gate = evaluate_gate(self.dag, evaluation, self.params)
        for check in gate.checks:
            status = "passed" if check.passed else "failed"
            self.records.append(StepRecord(check.step, "ConditionStep", status, detail=check.verdict))
            self.tracking.set_tags(self.tracking.parent_run_id, {f"gate.{check.step}": check.verdict})
            self.emit(f"[{check.step}] {'passed' if check.passed else 'FAILED'}: {check.verdict}")
        return gate

    def _monitoring_baselines(self, evaluation_dir: Path, scratch: Path) -> MonitoringBaselines | None:
        """Preprocess's baseline.json and the evaluation's constraints, when both were written."""
        constraints = evaluation_dir / CONSTRAINTS_FILE
        baseline = self._local_copy(self.outputs[d.PREPROCESS]["baseline"], scratch) / BASELINE_FILE
        if not (constraints.is_file() and baseline.is_file()):
            return None
        return MonitoringBaselines(baseline, constraints)

    def register(self, step: d.RegisterStep) -> RegisteredModel:
        started = time.monotonic()
        run_id = self.tracking.child(step.name, {"model_package_group": self.config.model_package_group}, {})
        with tempfile.TemporaryDirectory(dir=self.work_dir) as scratch:
            model_dir = self._local_copy(
                self.outputs[step.model.step][step.model.output], Path(scratch) / "model"
            )
            evaluation_dir = self._local_copy(
                self.outputs[step.evaluation.step][step.evaluation.output], Path(scratch) / "ev"
            )
            dataset_location = self.outputs[d.PREPROCESS]["dataset"]
            provenance = Provenance(
                dataset_hash=self._dataset_hash(Path(scratch) / "dataset.json"),
                input_data_uri=str(self.params["InputDataUri"]),
                dataset_location=dataset_location,
                code_commit=git_commit(),
                images={image: self.image_uri(image) for image in d.IMAGE_TAG_PARAMS},
                pipeline_run_id=self.tracking.parent_run_id,
                pipeline_execution=f"local:{self.tracking.parent_run_id}",
            )
            self.aws.ensure_bucket(self.config.bucket)
            registered = self._registry().register(
                model_dir,
                evaluation_dir / step.evaluation_file,
                run_id,
                provenance,
                self._monitoring_baselines(evaluation_dir, Path(scratch) / "baseline"),
            )
        self.tracking.set_tags(
            run_id, {"model_version": registered.version, "model_package_arn": registered.model_package_arn}
        )
        self.tracking.finish(run_id)
        seconds = time.monotonic() - started
        self.records.append(
            StepRecord(
                step.name,
                "RegisterStep",
                "registered",
                seconds,
                mlflow_run_id=run_id,
                outputs={"model_data_url": registered.model_data_url},
                detail=f"{registered.name} v{registered.version} {registered.status}",
            )
        )
        self.emit(f"[{step.name}] {registered.name} v{registered.version}: {registered.status}")
        return registered

    def _registry(self) -> ModelRegistry:
        audit = self.settings.audit_log or self.work_dir / "registry-audit.jsonl"
        return ModelRegistry(self.config, self.tracking_uri, self.aws, audit)

    def _dataset_hash(self, scratch_file: Path) -> str:
        location = self.outputs[d.PREPROCESS]["dataset"]
        if location.startswith("s3://"):
            bucket, key = split_s3_uri(f"{location}/dataset.json")
            self.aws.s3.download_file(bucket, key, str(scratch_file))
            return json.loads(scratch_file.read_text()).get("dataset_hash", "")
        return json.loads((Path(location) / "dataset.json").read_text()).get("dataset_hash", "")

    def read_features(self, result: LocalRunResult) -> None:
        """What the FeatureStore step wrote: its Parquet files, and the offline store if it had AWS."""
        from entrypoints.feature_store import SUMMARY_FILE
        from pipeline.feature_store import CLASSES_FILE, IMAGES_FILE

        location = self.outputs[d.FEATURE_STORE][d.FEATURES_OUTPUT]
        result.features = {
            "images_parquet": f"{location}/{IMAGES_FILE}",
            "classes_parquet": f"{location}/{CLASSES_FILE}",
        }
        with tempfile.TemporaryDirectory(dir=self.work_dir) as scratch:
            summary = json.loads((self._local_copy(location, Path(scratch)) / SUMMARY_FILE).read_text())
        for key in ("feature_group", "offline_store_images"):
            if summary.get(key):
                result.features[key] = summary[key]

    # -- the whole run -----------------------------------------------------------------------
    def run(self) -> LocalRunResult:
        parent = self.tracking.start(
            f"{self.config.pipeline_name} (local)",
            {k: as_string(v) for k, v in self.params.items()},
            {
                "environment": self.config.name,
                "code_commit": git_commit(),
                "mode": "docker" if self.settings.docker else "subprocess",
            },
        )
        result = LocalRunResult(
            "Failed", dict(self.params), self.records, self.tracking_uri, parent, self.store.root
        )
        self.emit(
            f"pipeline {self.config.pipeline_name}: MLflow run {parent} at {redact_uri(self.tracking_uri)}"
        )
        try:
            self._run_steps(result)
        except KeyboardInterrupt:
            self.tracking.finish(parent, "KILLED")
            raise
        except StepFailed as exc:
            result.failure = str(exc)
            self.records.append(
                StepRecord(exc.step, "job", "failed", detail=exc.reason, log_file=str(exc.log_file or ""))
            )
        self.tracking.set_tags(parent, {"status": result.status, "failure": result.failure[:4000]})
        self.tracking.finish(parent, "FINISHED" if result.status == "Succeeded" else "FAILED")
        return result

    def _run_steps(self, result: LocalRunResult) -> None:
        for step in jobs_before_gate(self.dag):
            if step.name == d.FEATURE_STORE and not self.settings.feature_store:
                continue
            if step.name == d.FEATURE_STORE and self.settings.register:
                self.aws.ensure_bucket(self.config.bucket)  # its offline store is in there
            self.records.append(self.run_job(step))
            if step.name == d.FEATURE_STORE:
                self.read_features(result)
        evaluation = self.evaluation()
        result.metrics = evaluation_metrics(evaluation)
        self.tracking.log_metrics(result.parent_run_id, result.metrics)
        gate = self.run_gate(evaluation)
        end = gate.end
        if not gate.passed:
            result.failure = gate.failure
            self.records.append(StepRecord(end.name, "FailStep", "failed", detail=result.failure))
            self.emit(f"[{end.name}] {result.failure}")
            return
        if isinstance(end, d.RegisterStep) and self.settings.register:
            result.registered = self.register(end)
            self.properties[end.name] = {"ModelPackageArn": result.registered.model_package_arn}
            for follower in jobs_after(self.dag, end.name):  # the MLflow mirror, as in SageMaker
                self.records.append(self.run_job(follower))
        result.status = "Succeeded"


def jobs_before_gate(dag: d.Dag) -> list[d.ProcessingStep | d.TrainingStep]:
    """The job steps that run whatever the gate decides, in declared order."""
    gated = dag.gated()
    return [s for s in dag.steps if isinstance(s, d.ProcessingStep | d.TrainingStep) and s.name not in gated]


def jobs_after(dag: d.Dag, name: str) -> list[d.ProcessingStep | d.TrainingStep]:
    """The job steps that follow step `name` (the MLflow mirror after Register)."""
    return [s for s in dag.followers(name) if isinstance(s, d.ProcessingStep | d.TrainingStep)]


def local_plan(dag: d.Dag) -> list[str]:
    """Every step this runner can run, in its order (the tests compare it with the SageMaker
    rendering): the jobs, the gate's checks and Fail steps, Register and what follows it."""
    gate = [s.name for s in dag.steps if isinstance(s, d.ConditionStep | d.FailStep)]
    register = [s.name for s in dag.steps if isinstance(s, d.RegisterStep)]
    after = [f.name for name in register for f in jobs_after(dag, name)]
    return [s.name for s in jobs_before_gate(dag)] + gate + register + after


def run_local(settings: LocalRunSettings) -> LocalRunResult:
    return LocalRunner(settings).run()


def summary(result: LocalRunResult) -> str:
    """Where everything is, as a human-readable block."""
    lines = [f"pipeline run: {result.status}" + (f" — {result.failure}" if result.failure else "")]
    for record in result.records:
        timing = f" {record.seconds:.0f} s" if record.seconds else ""
        lines.append(f"  {record.step:<22} {record.status:<10}{timing} {record.detail}".rstrip())
        lines.extend(f"      {name}: {location}" for name, location in record.outputs.items())
        if record.log_file:
            lines.append(f"      log: {record.log_file}")
    if result.metrics:
        lines.append("  metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.metrics.items())))
    for name, location in result.features.items():
        lines.append(f"  features {name}: {location}")
    if result.registered:
        r = result.registered
        lines.append(f"  registered: {r.name} version {r.version} ({r.status}) {r.model_package_arn}")
    lines.append(f"  artifact store: {result.store}")
    lines.append(f"  MLflow: {redact_uri(result.tracking_uri)} (parent run {result.parent_run_id})")
    return "\n".join(lines)
