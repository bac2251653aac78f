"""Every remote call goes through yolo_core/retry.py: MLflow calls under `TRACKING` (with MLflow's
own HTTP retries switched off), boto3 clients with `aws_client_config`."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.registry import APPROVED, APPROVED_ALIAS, PENDING
from pipeline.tracking import PipelineTracking
from tests.test_pipeline_registry import registry_setup, shared_mlflow  # noqa: F401 - fixtures
from yolo_core.retry import MLFLOW_HTTP_ENV, aws_client_config, aws_session

ROOT = Path(__file__).resolve().parents[1]


def _failing_once(monkeypatch: pytest.MonkeyPatch, client: Any, method: str) -> list[str]:
    """Make `client.method` fail once as an unavailable tracking server would, then work."""
    from mlflow.exceptions import MlflowException

    real: Callable[..., Any] = getattr(client, method)
    calls: list[str] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(method)
        if len(calls) == 1:
            raise MlflowException("tracking server unavailable", error_code="TEMPORARILY_UNAVAILABLE")
        return real(*args, **kwargs)

    monkeypatch.setattr(client, method, flaky)
    return calls


def test_register_retries_a_transient_mlflow_failure(registry_setup, monkeypatch) -> None:  # noqa: F811
    registry, tracking, model_dir, evaluation, provenance, aws = registry_setup
    calls = _failing_once(monkeypatch, registry.mlflow, "create_model_version")
    model = registry.register(model_dir, evaluation, tracking.child("RegisterModel", {}, {}), provenance)
    assert calls == ["create_model_version", "create_model_version"]
    assert model.status == PENDING and model.version == "1"  # one version: the failed try made none
    assert [str(v.version) for v in registry.mlflow.search_model_versions(f"name='{registry.name}'")] == ["1"]
    package = aws.sagemaker.describe_model_package(ModelPackageName=model.model_package_arn)
    assert package["CustomerMetadataProperties"]["mlflow_model_version"] == "1"


def test_approve_retries_a_transient_mlflow_failure(registry_setup, monkeypatch) -> None:  # noqa: F811
    registry, tracking, model_dir, evaluation, provenance, aws = registry_setup
    model = registry.register(model_dir, evaluation, tracking.child("RegisterModel", {}, {}), provenance)
    calls = _failing_once(monkeypatch, registry.mlflow, "set_registered_model_alias")
    approved = registry.approve(model.version, reason="passed review", who="tester")
    assert len(calls) == 2 and approved.status == APPROVED
    assert (
        str(registry.mlflow.get_model_version_by_alias(registry.name, APPROVED_ALIAS).version)
        == model.version
    )
    package = aws.sagemaker.describe_model_package(ModelPackageName=model.model_package_arn)
    assert package["ModelApprovalStatus"] == APPROVED  # not rolled back: the retry succeeded


def test_pipeline_tracking_retries_get_run(mlflow_store: str, tmp_path: Path, monkeypatch) -> None:
    tracking = PipelineTracking(mlflow_store, "retry-test", tmp_path / "artifacts")
    run_id = tracking.start("pipeline", {}, {})
    calls = _failing_once(monkeypatch, tracking.client, "get_run")
    assert tracking.artifact_uri(run_id).endswith(f"{run_id}/artifacts")
    assert len(calls) == 2


def test_mlflow_clients_leave_retrying_to_the_policy(mlflow_store: str, tmp_path: Path, monkeypatch) -> None:
    for key in MLFLOW_HTTP_ENV:
        monkeypatch.delenv(key, raising=False)
    PipelineTracking(mlflow_store, "retry-test", tmp_path / "artifacts").client  # noqa: B018
    import os

    assert {key: os.environ[key] for key in MLFLOW_HTTP_ENV} == MLFLOW_HTTP_ENV


def test_aws_session_clients_retry_by_the_policy() -> None:
    import boto3

    policy = boto3.client(
        "sagemaker", region_name="us-east-1", config=aws_client_config()
    ).meta.config.retries
    assert policy["mode"] == "standard"
    session = aws_session(region_name="us-east-1")
    assert session.client("sagemaker").meta.config.retries == policy
    # A library's own config (the SageMaker SDK's user agent) is merged over the policy, not instead.
    from botocore.config import Config

    merged = session.client("sagemaker", config=Config(user_agent_extra="sdk/1")).meta.config
    assert merged.retries == policy and merged.user_agent_extra == "sdk/1"


def test_start_creates_its_client_with_the_policy() -> None:
    from pipeline.config import load_config
    from pipeline.sagemaker_render import start

    made: list[dict[str, Any]] = []

    class Client:
        def start_pipeline_execution(self, **request: Any) -> dict[str, str]:
            return {"PipelineExecutionArn": "arn:execution"}

    class Session:
        def client(self, service: str, **kwargs: Any) -> Client:
            made.append({"service": service, **kwargs})
            return Client()

    assert start(load_config("dev"), {}, boto_session=Session()) == "arn:execution"
    assert [m["service"] for m in made] == ["sagemaker"]
    assert made[0]["config"].retries == aws_client_config().retries


def _python_files(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (ROOT / folder).rglob("*.py"))


def _makes_aws_client(call: ast.Call) -> bool:
    """boto3.client(...) / boto3.resource(...), or .client/.resource on a boto3 session."""
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr not in {"client", "resource"}:
        return False
    owner = func.value
    if isinstance(owner, ast.Name):
        return owner.id == "boto3" or owner.id.endswith("session")
    if isinstance(owner, ast.Attribute):
        return owner.attr.endswith("session")
    return isinstance(owner, ast.Call) and ast.unparse(owner.func) in {
        "boto3.Session",
        "boto3.session.Session",
    }


def _has_policy_config(call: ast.Call) -> bool:
    return any(
        keyword.arg == "config"
        and isinstance(keyword.value, ast.Call)
        and ast.unparse(keyword.value.func).endswith("aws_client_config")
        for keyword in call.keywords
    )


def test_every_boto3_client_is_made_with_the_retry_config() -> None:
    found, missing = 0, []
    for path in _python_files("pipeline", "entrypoints", "yolo_core"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and _makes_aws_client(node):
                found += 1
                if not _has_policy_config(node):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert found >= 2  # pipeline/aws.py and sagemaker_render.start: the check sees them
    assert not missing, "boto3 clients without config=aws_client_config():\n" + "\n".join(missing)


def test_static_check_catches_a_client_without_config() -> None:
    calls = [
        node
        for node in ast.walk(ast.parse("boto3.client('s3')\nboto_session.client('sagemaker')\n"))
        if isinstance(node, ast.Call)
    ]
    assert all(_makes_aws_client(call) and not _has_policy_config(call) for call in calls)


def test_every_mlflow_artifact_download_goes_through_the_retry_policy() -> None:
    """`download_artifacts` is only ever handed to `call_with_retry` (pipeline.tracking's
    download_registered, compare's card reads), never called bare."""
    handed, bare = 0, []
    for path in _python_files("pipeline", "entrypoints", "yolo_core"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            if ast.unparse(node.func).endswith("download_artifacts"):
                bare.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
            elif ast.unparse(node.func).endswith("call_with_retry") and node.args:
                handed += ast.unparse(node.args[0]).endswith("download_artifacts")
    assert handed >= 2
    assert not bare, "download_artifacts called without call_with_retry:\n" + "\n".join(bare)


def test_a_registered_model_download_retries_a_transient_failure(tmp_path: Path, monkeypatch) -> None:
    import mlflow.artifacts

    from pipeline.tracking import download_registered

    source = tmp_path / "run" / "model"
    source.mkdir(parents=True)
    (source / "model.json").write_text("{}")
    real, calls = mlflow.artifacts.download_artifacts, []

    def flaky(**kwargs: Any) -> str:
        calls.append(kwargs["artifact_uri"])
        if len(calls) == 1:
            raise ConnectionResetError(104, "connection reset by peer")
        return real(**kwargs)

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", flaky)
    local = download_registered(source.as_uri(), tmp_path / "copy")
    assert len(calls) == 2 and (Path(local) / "model.json").is_file()
