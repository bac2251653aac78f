"""`python -m pipeline deploy --local --docker`: staging and production served by the inference
image `make build` made (`docker run IMAGE serve` on a published loopback port), tested over HTTP
by the same staging checks as the serve entrypoint, with the same refusal of a broken version."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_deploy_local import DEPLOYMENT, answers, holdout_set, model, run_deploy

from pipeline.deploy import flow
from pipeline.deploy.local import LocalDeployer
from tests.fixtures_docker import BuiltImages, DockerEngine

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1800)]


def running_image(engine: DockerEngine, container: str) -> str:
    return engine("inspect", "--format", "{{.Config.Image}}", container).stdout.strip()


def running(engine: DockerEngine, container: str) -> bool:
    return bool(engine("ps", "--quiet", "--filter", f"name=^/{container}$").stdout.strip())


def test_deploy_local_docker_serves_the_image_and_keeps_it_when_a_broken_version_is_refused(
    docker_engine: DockerEngine, docker_images: BuiltImages, tmp_path: Path
) -> None:
    image = docker_images.ref("inference")
    dataset, names = holdout_set(tmp_path / "holdout")
    deployer = LocalDeployer(tmp_path / "state", docker_image=image)
    audit = tmp_path / "audit.jsonl"
    passing = flow.HoldoutData(dataset, names, 0.0, 4)
    try:
        first = run_deploy(deployer, "1", model(tmp_path / "v1", names), passing, audit)
        assert first.status == "live", first.message
        assert first.message == f"production {DEPLOYMENT.endpoint_name('production')}: version 1 live"
        staging, production = deployer.history.live("staging"), deployer.history.live("production")
        assert staging["container"] != production["container"]
        for entry in (staging, production):
            assert running_image(docker_engine, entry["container"]) == image
            assert answers(entry["url"])

        # Corrupt weights: the container refuses to serve them, staging fails, version 1 keeps serving.
        broken = model(tmp_path / "v2", names)
        (broken / "best.pt").write_bytes(b"\x80" + b"garbage" * 100)
        refused = run_deploy(deployer, "2", broken, passing, audit)
        assert refused.status == "refused" and "staging start failed" in refused.message, refused.message
        assert "the container did not come up" in refused.message
        assert deployer.history.live("production")["container"] == production["container"]
        assert answers(production["url"])

        deployer.stop_all()
        assert deployer.url("production") == "" and deployer.url("staging") == ""
        for entry in (staging, production):  # `docker stop` has returned: neither is running now
            assert not running(docker_engine, entry["container"])
    finally:
        deployer.stop_all()
