"""The CI workflows' own commands, rendered from the YAML and run, so the workflows cannot rot.

model-build.yml as a push to main runs it: the check job's lint, test selection and pipeline
definition steps, then the build job's upsert and start against moto, as the dev CI role's session
(the images are not built: no Docker here; `make build` has its own tests). The deploy workflow's and
the buildspecs' commands are expanded by `make -n`: every target they name exists and passes the
version as an environment variable, never pasted into the command.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import boto3
import pytest
import yaml
from governance_support import act_as, create_roles

from pipeline.aws import AwsClients
from pipeline.config import load_config

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
_EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


def render(value: str, context: dict[str, str]) -> str:
    """The few expressions the workflows use: `a.b`, and `a.b || 'default'`."""

    def evaluate(match: re.Match) -> str:
        name, _, default = match[1].partition("||")
        return context.get(name.strip(), "") or default.strip().strip("'")

    return _EXPRESSION.sub(evaluate, value)


def steps(workflow: str, job: str, context: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A job's `run:` commands by step id, and its environment, rendered."""
    spec = yaml.safe_load((WORKFLOWS / workflow).read_text())["jobs"][job]
    env = {k: render(str(v), context) for k, v in spec.get("env", {}).items()}
    return {s["id"]: s["run"] for s in spec["steps"] if "id" in s}, env


def bash(command: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture
def ci_env(aws_env, guarded_subprocess_env: dict, tmp_path: Path) -> dict[str, str]:
    """A runner's environment after configure-aws-credentials: dev's CI role, moto as AWS."""
    config = load_config("dev")
    create_roles(config)
    AwsClients(config.region).ensure_bucket(config.bucket)
    return {
        **guarded_subprocess_env,
        **aws_env.env(config.region),
        **act_as(config, "ci", "model-build-42"),
        "GITHUB_RUN_ID": "42",
        "CI_OUT": str(tmp_path / "ci-out"),
        # The selection's own pytest keeps its temporary files apart from this run's.
        "PYTEST_ADDOPTS": f"--basetemp={tmp_path / 'inner-pytest'}",
    }


def test_model_build_runs_as_written(ci_env: dict[str, str], tmp_path: Path) -> None:
    context = {"inputs.env": ""}  # a push: no inputs
    commands, job_env = steps("model-build.yml", "check", context)
    assert job_env == {"TARGET_ENV": "dev"}
    env = {**ci_env, **job_env}
    for step in ("lint", "test", "definition"):
        done = bash(commands[step], env)
        assert done.returncode == 0, f"{step}: {commands[step]}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        if step == "test":
            assert re.search(r"\d+ passed", done.stdout) and "failed" not in done.stdout, done.stdout
    assert (tmp_path / "ci-out" / "pipeline-dev.json").is_file()

    commands, job_env = steps("model-build.yml", "build", context)
    assert list(commands) == ["build", "push", "upsert", "start"]
    env = {**ci_env, **job_env}
    for step in ("upsert", "start"):
        done = bash(commands[step], env)
        assert done.returncode == 0, f"{step}: {commands[step]}\n{done.stdout}{done.stderr}"
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    assert sagemaker.describe_pipeline(PipelineName="drone-yolo-dev")["PipelineName"] == "drone-yolo-dev"
    executions = sagemaker.list_pipeline_executions(PipelineName="drone-yolo-dev")[
        "PipelineExecutionSummaries"
    ]
    assert [e["PipelineExecutionDisplayName"] for e in executions] == ["ci-42"]


def _dry_run(line: str, env: dict[str, str]) -> str:
    assert line.startswith("make "), line
    done = bash(line.replace("make ", "make -n ", 1), env)
    assert done.returncode == 0, line + "\n" + done.stderr
    return done.stdout


def test_model_deploy_and_the_buildspecs_name_targets_that_exist(guarded_subprocess_env: dict) -> None:
    hostile = "7; touch /tmp/owned"
    env = {**guarded_subprocess_env, "PATH": os.environ["PATH"]}
    for job in ("staging", "production"):
        commands, job_env = steps("model-deploy.yml", job, {"inputs.version": hostile})
        assert job_env["MODEL_VERSION"] == hostile
        for step, line in commands.items():
            expanded = _dry_run(line, {**env, **job_env})
            assert hostile not in expanded
            if step in {"deploy", "promote"}:
                assert f'pipeline {step} --env prod --version "$MODEL_VERSION"' in expanded, expanded
    build = yaml.safe_load((ROOT / "ci" / "buildspec-build.yml").read_text())["phases"]
    deploy = yaml.safe_load((ROOT / "ci" / "buildspec-deploy.yml").read_text())["phases"]
    for line in [*build["install"]["commands"], *build["build"]["commands"]]:
        if line != "make setup":  # would install: its own target, run by `make test`'s users
            _dry_run(line, {**env, "ENV": "dev"})
    for step in ("deploy", "promote"):
        for line in deploy["build"]["commands"]:
            _dry_run(line, {**env, "ENV": "prod", "CI_STEP": step, "MODEL_VERSION": "3"})
