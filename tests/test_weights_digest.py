"""Weights are checked against model.json's SHA-256 before anything unpickles them.

One flipped byte in best.pt must stop the predictor, `evaluate` and `serve`, each with one line
that names the file and both digests; a card without a digest still loads, with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_serve_contract import build_random_model

from tests.serve_support import serve_until_exit
from yolo_core.errors import UserInputError
from yolo_core.infer import torch_backend
from yolo_core.infer.predictor import Predictor
from yolo_core.model_card import ModelCard
from yolo_core.weights import load_checkpoint, sha256_of, verify_weights

ROOT = Path(__file__).resolve().parent.parent


def with_digest(model_dir: Path) -> Path:
    """The card rewritten with its weights' digest, as training writes it."""
    card = ModelCard.load(model_dir)
    card.weights_sha256 = sha256_of(model_dir / card.weights_file)
    card.save(model_dir)
    return model_dir


def flip_one_byte(weights: Path) -> None:
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def signed_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random yolo11n model folder whose card records its digest. Tests copy it first."""
    return with_digest(build_random_model(tmp_path_factory.mktemp("signed") / "model"))


@pytest.fixture
def tampered_model(signed_model: Path, tmp_path: Path) -> tuple[Path, str, str]:
    """(folder, the card's digest, the file's digest) after one byte of best.pt changed."""
    folder = Path(shutil.copytree(signed_model, tmp_path / "model"))
    flip_one_byte(folder / "best.pt")
    return folder, ModelCard.load(folder).weights_sha256, sha256_of(folder / "best.pt")


def assert_names_the_mismatch(line: str, folder: Path, expected: str, actual: str) -> None:
    assert "\n" not in line.strip()
    assert str(folder / "best.pt") in line and expected in line and actual in line and "SHA-256" in line


# -- the digest module ----------------------------------------------------------------------------
def test_sha256_of_streams_the_whole_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 12_289  # ~3 MB: several read chunks, a ragged last one
    (tmp_path / "w.pt").write_bytes(data)
    assert sha256_of(tmp_path / "w.pt") == hashlib.sha256(data).hexdigest()


def test_verify_weights_accepts_a_match_and_names_a_mismatch(tmp_path: Path) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert verify_weights(weights, digest) == digest
    wrong = "0" * 64
    with pytest.raises(UserInputError) as refused:
        verify_weights(weights, wrong)
    assert_names_the_mismatch(str(refused.value), tmp_path, wrong, digest)
    with pytest.raises(UserInputError, match="weights file not found"):
        verify_weights(tmp_path / "missing.pt", digest)


def test_no_recorded_digest_loads_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    with caplog.at_level(logging.WARNING, logger="yolo_core.weights"):
        assert verify_weights(weights, "") == hashlib.sha256(b"weights").hexdigest()
    assert "records no weights_sha256" in caplog.text and str(weights) in caplog.text


def test_the_card_type_checks_the_digest(tmp_path: Path) -> None:
    ModelCard(class_names=["car"], imgsz=320).save(tmp_path)
    assert ModelCard.load(tmp_path).weights_sha256 == ""  # older cards: none recorded
    digest = hashlib.sha256(b"x").hexdigest()
    ModelCard(class_names=["car"], imgsz=320, weights_sha256=digest).save(tmp_path)
    assert ModelCard.load(tmp_path).weights_sha256 == digest
    for bad in ("abc", digest.upper(), 42):
        ModelCard(class_names=["car"], imgsz=320, weights_sha256=bad).save(tmp_path)  # type: ignore[arg-type]
        with pytest.raises(UserInputError, match="field 'weights_sha256' must be"):
            ModelCard.load(tmp_path)


def test_checkpoints_load_weights_only(signed_model: Path) -> None:
    checkpoint = load_checkpoint(signed_model / "best.pt")
    assert type(checkpoint["model"]).__name__ == "DetectionModel"


def test_a_pickle_calling_an_allowed_class_does_not_run_code(tmp_path: Path) -> None:
    """Why a bare `safe_globals([DetectionModel])` is not enough: a pickle may *call* an allowed
    class, and DetectionModel evaluates its config's `activation` string. The restricted loader
    refuses it without running it."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    marker = tmp_path / "code-ran"
    config = {
        "nc": 1,
        "activation": f"__import__('pathlib').Path({str(marker)!r}).touch() or __import__('torch').nn.SiLU()",
        "backbone": [[-1, 1, "Conv", [16, 3, 2]]],
        "head": [[-1, 1, "Conv", [16, 3, 2]]],
    }

    class CallsDetectionModel:
        def __reduce__(self):
            return DetectionModel, (config, 3, 1, False)

    torch.save({"model": CallsDetectionModel()}, tmp_path / "crafted.pt")
    with pytest.raises(UserInputError, match="not a loadable Ultralytics checkpoint"):
        load_checkpoint(tmp_path / "crafted.pt")
    assert not marker.exists()


def test_training_records_the_digest_of_best_pt(trained_model_dir: Path) -> None:
    card = ModelCard.load(trained_model_dir)
    assert card.weights_sha256 == sha256_of(trained_model_dir / card.weights_file)


# -- the three readers refuse a changed file ------------------------------------------------------
@pytest.mark.parametrize("backend", ["torch", "onnx", "openvino", "auto"])
def test_predictor_refuses_changed_weights_before_unpickling(
    tampered_model: tuple[Path, str, str], backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, expected, actual = tampered_model
    unpickled: list[Path] = []
    monkeypatch.setattr(
        torch_backend, "load_checkpoint", unpickled.append
    )  # the ONNX export reads through it
    with pytest.raises(UserInputError) as refused:
        Predictor.from_model_dir(folder, device="cpu", backend=backend)
    assert_names_the_mismatch(str(refused.value), folder, expected, actual)
    assert unpickled == []


def test_predictor_loads_a_card_without_digest_with_a_warning(
    signed_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = Path(shutil.copytree(signed_model, tmp_path / "model"))
    card = ModelCard.load(folder)
    card.weights_sha256 = ""
    card.save(folder)
    with caplog.at_level(logging.WARNING, logger="yolo_core.weights"):
        predictor = Predictor.from_model_dir(folder, device="cpu", backend="torch")
    assert predictor.names == card.names and "records no weights_sha256" in caplog.text


def test_evaluate_exits_1_naming_the_digest(
    trained_model_dir: Path, synthetic_dataset: Path, tmp_path: Path, guarded_subprocess_env: dict[str, str]
) -> None:
    folder = Path(shutil.copytree(trained_model_dir, tmp_path / "model"))
    expected = ModelCard.load(folder).weights_sha256
    flip_one_byte(folder / "best.pt")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "entrypoints.evaluate",
            "--model",
            str(folder),
            "--dataset",
            str(synthetic_dataset),
        ]
        + ["--output", str(tmp_path / "out"), "--device", "cpu"],
        cwd=ROOT,
        env={**guarded_subprocess_env, "SAGEMAKER_BASE_DIR": str(tmp_path / "opt_ml")},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert_names_the_mismatch(lines[0], folder, expected, sha256_of(folder / "best.pt"))
    assert not (tmp_path / "out" / "evaluation.json").exists()


def test_serve_exits_1_naming_the_digest(
    tampered_model: tuple[Path, str, str], guarded_subprocess_env: dict[str, str]
) -> None:
    folder, expected, actual = tampered_model
    result = serve_until_exit(folder, guarded_subprocess_env)
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert_names_the_mismatch(last, folder, expected, actual)
