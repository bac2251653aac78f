"""The local deployment with real servers (the serve entrypoint on loopback, port 0): a model is
staged, tested and promoted; a broken one (corrupt weights) and one that falls short of its
registered evaluation are refused while the live version keeps answering; rollback restores it.

Most models are yolo11n with random weights (the refusals do not need a trained model); the
registered evaluation is then data: 0.0 passes a random model, 0.6 is far above what it measures.
The last test deploys the session's trained model against its own registered evaluation.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from test_serve_contract import build_random_model

from pipeline.config import load_config
from pipeline.deploy import flow
from pipeline.deploy.aws import Candidate
from pipeline.deploy.declaration import build_deployment
from pipeline.deploy.local import LocalDeployer
from yolo_core.model_card import ModelCard
from yolo_core.weights import sha256_of

DEPLOYMENT = build_deployment(load_config("dev"))  # automatic gate


def model(folder: Path, class_names: list[str]) -> Path:
    """A random yolo11n (2 classes) named with the holdout's first classes, its digest on the card."""
    build_random_model(folder)
    card = ModelCard.load(folder)
    card.class_names = class_names[:2]
    card.weights_sha256 = sha256_of(folder / card.weights_file)
    card.save(folder)
    return folder


def holdout_set(root: Path) -> tuple[Path, list[str]]:
    """A small labelled YOLO folder (8 synthetic frames, 2 classes) and its class names."""
    from yolo_core.data.dataset import build_dataset
    from yolo_core.data.synthetic import generate_scenes

    raw = generate_scenes(
        root / "raw", 8, seed=3, width=160, height=160, object_px=(14, 40), classes=("car", "pedestrian")
    )
    dataset = build_dataset(raw, root / "dataset", "visdrone", seed=3, progress=False).root
    from yolo_core.evaluation.ground_truth import load_split

    return dataset, list(load_split(dataset, "val").names.values())


@pytest.fixture(scope="module")
def holdout(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    return holdout_set(tmp_path_factory.mktemp("holdout"))


def answers(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:
        return response.status == 200


def run_deploy(deployer: LocalDeployer, version: str, model_dir: Path, data: flow.HoldoutData, audit: Path):
    chosen = Candidate(version, f"arn:local/{version}", "abc123", str(model_dir))
    return flow.deploy_local(DEPLOYMENT, deployer, chosen, data, audit)


def test_deploy_refuse_broken_and_roll_back(tmp_path: Path, holdout, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    dataset, names = holdout
    deployer = LocalDeployer(tmp_path / "state", threads=1)
    audit = tmp_path / "audit.jsonl"
    passing = flow.HoldoutData(dataset, names, 0.0, 4)
    try:
        first = run_deploy(deployer, "1", model(tmp_path / "v1", names), passing, audit)
        assert first.status == "live", first.message
        assert [c.name for c in first.report.checks] == ["smoke", "accuracy", "latency"]
        assert set(first.report.checks[2].figures) >= {"p50_ms", "p99_ms"}  # recorded, not judged
        v1_url = deployer.url("production")
        assert answers(v1_url) and answers(deployer.url("staging")) and v1_url != deployer.url("staging")

        # Corrupt weights: the server refuses to start, so staging fails; version 1 keeps serving.
        broken = model(tmp_path / "v2", names)
        (broken / "best.pt").write_bytes(b"\x80" + b"garbage" * 100)
        refused = run_deploy(deployer, "2", broken, passing, audit)
        assert refused.status == "refused" and "staging start failed" in refused.message, refused.message
        assert deployer.url("production") == v1_url and answers(v1_url)

        # Wrong classes: the staging smoke check names them; version 1 keeps serving.
        wrong = model(tmp_path / "v3", names)
        card = ModelCard.load(wrong)
        card.class_names = ["cat", "dog"]
        card.save(wrong)
        refused = run_deploy(deployer, "3", wrong, passing, audit)
        assert refused.status == "refused" and "staging smoke check failed" in refused.message, (
            refused.message
        )
        assert deployer.url("production") == v1_url and answers(v1_url)

        # Short of its registered evaluation: refused, naming the accuracy check.
        short = run_deploy(
            deployer, "4", model(tmp_path / "v4", names), flow.HoldoutData(dataset, names, 0.6, 4), audit
        )
        assert short.status == "refused" and "staging accuracy check failed" in short.message, short.message
        assert deployer.url("production") == v1_url and answers(v1_url)

        # A good version 5 replaces version 1 only once it answers; rollback brings version 1 back.
        assert run_deploy(deployer, "5", model(tmp_path / "v5", names), passing, audit).status == "live"
        v5_url = deployer.url("production")
        assert v5_url != v1_url and answers(v5_url)
        back = flow.rollback(DEPLOYMENT, deployer, "v5 misbehaves", "tester", audit)
        assert back.status == "live" and "version 1 live" in back.message
        assert deployer.history.live("production")["version"] == "1" and answers(deployer.url("production"))
        events = [json.loads(line) for line in audit.read_text().splitlines()]
        refusals = ["NotPromoted"] * 3
        assert [e["action"] for e in events] == ["Promoted", *refusals, "Promoted", "RolledBack"]
        assert [e["version"] for e in events if e["action"] == "NotPromoted"] == ["2", "3", "4"]
        assert "staging smoke check failed" in events[2]["reason"], events[2]

        # Stopped servers are recorded as stopped: nothing is listed live, and they no longer answer.
        live_urls = [deployer.url("staging"), deployer.url("production")]
        deployer.stop_all()
        assert deployer.history.live("staging") is None and deployer.history.live("production") is None
        assert [e["action"] for e in deployer.history.read()["deployments"][-2:]] == ["stopped", "stopped"]
        for url in live_urls:
            with pytest.raises(urllib.error.URLError):
                answers(url)
    finally:
        deployer.stop_all()


@pytest.mark.slow
def test_a_trained_model_passes_staging_and_stays_live_when_a_broken_one_is_refused(
    trained_model_dir: Path, synthetic_dataset: Path, tmp_path: Path, monkeypatch
) -> None:
    """The session's trained model, registered with its own evaluation (the Evaluate step's figure on
    the same val split), passes the staging test through the server and goes live; a copy with one
    byte of its weights flipped is refused while the trained one keeps answering."""
    import shutil

    from yolo_core.evaluation.evaluate import EvaluationSettings, evaluate_model
    from yolo_core.evaluation.ground_truth import load_split

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    trained = Path(shutil.copytree(trained_model_dir, tmp_path / "trained"))
    settings = EvaluationSettings(device="cpu")
    report = evaluate_model(trained, synthetic_dataset, tmp_path / "evaluation", settings)
    registered = float(report["metrics"]["map50_95"]["value"])
    split = load_split(synthetic_dataset, "val")
    data = flow.HoldoutData(synthetic_dataset, list(split.names.values()), registered, len(split.image_files))
    deployer = LocalDeployer(tmp_path / "state", threads=1)
    audit = tmp_path / "audit.jsonl"
    try:
        live = run_deploy(deployer, "1", trained, data, audit)
        assert live.status == "live", live.message
        accuracy = live.report.checks[1].figures
        assert accuracy["map50_95"] > 0.1, accuracy  # it finds the objects it was trained on
        url = deployer.url("production")

        broken = Path(shutil.copytree(trained, tmp_path / "broken"))
        weights = bytearray((broken / "best.pt").read_bytes())
        weights[len(weights) // 2] ^= 0xFF
        (broken / "best.pt").write_bytes(bytes(weights))
        refused = run_deploy(deployer, "2", broken, data, audit)
        assert refused.status == "refused" and "staging start failed" in refused.message, refused.message
        assert deployer.url("production") == url and answers(url)
    finally:
        deployer.stop_all()
