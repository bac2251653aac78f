"""The README's deployment commands, run as written (subprocesses) against a work folder where a
model was registered the way the local runner registers it (MLflow run + SageMaker package on moto).

Locally: `deploy --local` reads the version from MLflow, fetches its `model` artifact and serves
it; a second version replaces it; `rollback --local` brings the first back. On SageMaker (moto):
`promote --env prod` reads the package's approval and creates the production endpoint. The models
are random yolo11n (their registered mAP50-95 is 0.0, which a random model meets). Approvals,
promotions and rollbacks are guarded: they run as an ML engineer's assumed-role session.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
from governance_support import act_as, create_roles
from test_deploy_local import answers, holdout_set, model

from pipeline.aws import AwsClients
from pipeline.config import load_config
from pipeline.deploy.decisions import CheckResult, StagingReport
from pipeline.deploy.declaration import build_deployment
from pipeline.deploy.history import History
from pipeline.deploy.local import LocalDeployer
from pipeline.registry import ModelRegistry, Provenance
from pipeline.tracking import PipelineTracking, default_tracking_uri

ROOT = Path(__file__).resolve().parent.parent


def register(work_dir: Path, env: str, model_dir: Path, map50_95: float) -> str:
    """Registers `model_dir` as the local runner's RegisterModel step does; returns the version."""
    config = load_config(env)
    tracking = PipelineTracking(
        default_tracking_uri(work_dir), config.pipeline_name, work_dir / "mlflow-artifacts"
    )
    tracking.start("pipeline", {}, {})
    run_id = tracking.child("RegisterModel", {}, {})
    evaluation = model_dir.parent / f"{model_dir.name}-evaluation.json"
    metrics = {"map50": map50_95, "map50_95": map50_95, "precision": 0.0, "recall": 0.0}
    evaluation.write_text(json.dumps({"metrics": {k: {"value": v} for k, v in metrics.items()}}))
    aws = AwsClients(config.region)
    aws.ensure_bucket(config.bucket)
    provenance = Provenance(
        dataset_hash="0" * 64,
        input_data_uri="synthetic",
        dataset_location=str(model_dir),
        code_commit="abc123",
        images={image: f"local/{image}:test" for image in ("preprocess", "train", "inference")},
        pipeline_run_id=tracking.parent_run_id,
        pipeline_execution=f"local:{tracking.parent_run_id}",
    )
    registry = ModelRegistry(config, tracking.tracking_uri, aws, work_dir / "registry-audit.jsonl")
    return registry.register(model_dir, evaluation, run_id, provenance).version


def pipeline_command(cwd: Path, env: dict, line: str) -> subprocess.CompletedProcess:
    """`python -m pipeline ...` exactly as the README writes it, run in `cwd`."""
    import shlex

    command = [sys.executable, "-m", "pipeline", *shlex.split(line)]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    return done.stderr.strip()


def urls(stdout: str) -> dict[str, str]:
    return dict(
        line.split(": ", 1) for line in stdout.splitlines() if line.startswith(("staging: ", "production: "))
    )


@pytest.mark.slow
def test_local_deploy_and_rollback_commands_as_the_readme_writes_them(
    tmp_path: Path, aws_env, guarded_subprocess_env: dict
) -> None:
    env = {**guarded_subprocess_env, **aws_env.env(), "OMP_NUM_THREADS": "1"}
    create_roles(load_config("dev"))
    engineer = {**env, **act_as(load_config("dev"), "ml_engineer", "bob")}
    holdout, names = holdout_set(tmp_path / "holdout")
    work = tmp_path / ".demo"
    first = register(work, "dev", model(tmp_path / "v1", names), 0.0)
    # Approvals go to the environment's S3 trail unless a file is named: here, the local one.
    trail = "--work-dir .demo --audit-log .demo/registry-audit.jsonl"
    state = LocalDeployer(work / "deploy" / "dev")
    deploy = f"deploy --local --env dev --version latest --holdout {holdout} --work-dir .demo"
    try:
        refused = pipeline_command(tmp_path, env, deploy)
        assert one_line_error(refused) == (
            f"error: model drone-yolo-dev version {first} is PendingManualApproval: approve it first "
            f"(python -m pipeline approve --version {first} --reason ...)"
        )
        approve = pipeline_command(tmp_path, engineer, f"approve --version {first} --reason tested {trail}")
        assert approve.returncode == 0, approve.stderr

        done = pipeline_command(tmp_path, env, deploy)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"production drone-yolo-dev-prod: version {first} live" in done.stdout
        v1 = urls(done.stdout)
        assert set(v1) == {"staging", "production"} and all(answers(url) for url in v1.values())

        second = register(work, "dev", model(tmp_path / "v2", names), 0.0)
        pipeline_command(tmp_path, engineer, f"approve --version {second} --reason tested {trail}")
        done = pipeline_command(tmp_path, env, deploy)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"version {second} live" in done.stdout
        v2 = urls(done.stdout)
        assert answers(v2["production"]) and v2["production"] != v1["production"]

        back = pipeline_command(tmp_path, env, "rollback --local --env dev --work-dir .demo")
        assert back.returncode == 0, back.stdout + back.stderr
        assert f"rolled back: production drone-yolo-dev-prod: version {first} live" in back.stdout
        assert state.history.live("production")["version"] == first
        assert answers(urls(back.stdout)["production"])
        actions = [
            json.loads(line)["action"] for line in (work / "registry-audit.jsonl").read_text().splitlines()
        ]
        assert actions == ["Approved", "Promoted", "Approved", "Promoted", "RolledBack"]

        stopped = pipeline_command(tmp_path, env, "stop --local --env dev --work-dir .demo")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        live = urls(back.stdout)
        assert stopped.stdout.splitlines() == [
            f"stopped staging v{second} {live['staging']}",
            f"stopped production v{first} {live['production']}",
        ]
        assert state.url("staging") == "" and state.url("production") == ""
        with pytest.raises(urllib.error.URLError):
            answers(live["production"])
    finally:
        state.stop_all()


def test_promote_and_rollback_on_sagemaker_as_the_readme_writes_them(
    tmp_path: Path, aws_env, guarded_subprocess_env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """prod's gate is manual: `promote` reads the package's approval in SageMaker and the staging
    report in the deployment history (recorded here: moto cannot run the staging test). Everything
    happens in prod's account: registered by its CI role, decided by its ML engineer."""
    config = load_config("prod")
    create_roles(config)
    for key, value in act_as(config, "ci", "model-build").items():
        monkeypatch.setenv(key, value)
    env = {**guarded_subprocess_env, **aws_env.env(), **act_as(config, "ml_engineer", "bob")}
    version = register(tmp_path / ".pipeline", "prod", model(tmp_path / "v1", ["car", "pedestrian"]), 0.0)
    promote = f'promote --env prod --version {version} --reason "staging looks right"'
    refused = pipeline_command(tmp_path, env, promote)
    assert "is PendingManualApproval: approve it first" in one_line_error(refused)
    pipeline_command(tmp_path, env, f"approve --env prod --version {version} --reason tested")

    history = History(
        config.s3_uri("deployments", build_deployment(config).project), AwsClients(config.region).s3
    )
    checks = (CheckResult("smoke", True, "ok"), CheckResult("accuracy", True, "ok"))
    history.save_report(StagingReport(version, checks))
    done = pipeline_command(tmp_path, env, promote)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"production drone-yolo-prod-prod: version {version} live"
    listed = pipeline_command(tmp_path, env, "audit --env prod --json").stdout.splitlines()
    audit = [json.loads(line) for line in listed]
    assert audit[-1]["action"] == "Promoted" and audit[-1]["reason"] == "staging looks right"

    back = pipeline_command(tmp_path, env, 'rollback --env prod --reason "latency regression"')
    assert "no previous production version recorded" in one_line_error(back)
