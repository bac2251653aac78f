"""Real local stand-ins for the cloud services: a moto server on loopback and an MLflow store.

`moto_server` is one `moto_server -H 127.0.0.1 -p <free port>` process for the whole session,
stopped at the end; `aws_env` points boto3 (and subprocesses) at it with fake credentials and
resets its state, so each test starts from an empty account. `mlflow_store` is a sqlite store in
the test's own folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.local_aws import MotoServer


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(log_file=tmp_path_factory.mktemp("moto") / "moto_server.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """This test's AWS is the (freshly reset) moto server, for boto3 here and in subprocesses."""
    moto_server.reset()
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server


@pytest.fixture
def mlflow_store(tmp_path: Path) -> str:
    """A local MLflow tracking and registry store (sqlite), empty for each test."""
    return f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
