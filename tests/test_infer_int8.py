"""int8: made by the `quantize` command with its measured cost, found only for its own weights,
offered to `auto` only once that cost is known, and refused with one line where it is missing.

The candidates are pure functions of a described host; the command and the engine run NNCF and
OpenVINO for real on the session's trained model.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from yolo_core.errors import UserInputError
from yolo_core.infer.engine_candidates import EngineSpec, engine_candidates, native_engines
from yolo_core.infer.engine_choice import EngineChoice, choice_key
from yolo_core.infer.host import Host
from yolo_core.infer.int8 import REPORT_FILE, find_quantized, quantized_dir

ALL = {"torch": "2", "onnx": "1", "openvino": "2026"}
VNNI_XEON = Host("cpu", "Intel Xeon (Cascade Lake)", cpu_bf16=False, threads=2, versions=ALL)

needs_int8_tools = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None,
    reason="openvino and nncf are not installed",
)


def test_int8_is_a_candidate_only_where_a_measured_quantised_model_exists():
    assert EngineSpec("openvino", "int8") not in native_engines(VNNI_XEON)
    assert native_engines(VNNI_XEON, int8=True)[-1] == EngineSpec("openvino", "int8")
    assert [s.name for s in engine_candidates(VNNI_XEON, "auto", "int8", int8=True)] == ["openvino int8"]
    # Asked for by name without one: the OpenVINO engine is built and says how to make it.
    assert engine_candidates(VNNI_XEON, "auto", "int8") == [EngineSpec("openvino", "int8")]
    with pytest.raises(UserInputError, match="runs a quantised model on backend 'openvino'"):
        engine_candidates(VNNI_XEON, "torch", "int8")
    without_openvino = Host("cpu", "x", False, 2, versions={"torch": "2"})
    with pytest.raises(UserInputError, match="pip install openvino"):
        engine_candidates(without_openvino, "openvino", "int8")


def test_a_new_quantised_model_is_a_new_choice():
    candidates = native_engines(VNNI_XEON, int8=True)
    probe = {"batch": 8}
    first, second = (choice_key(VNNI_XEON, "w", probe, candidates, digest) for digest in ("a", "b"))
    assert first != second


def test_the_choice_record_carries_the_int8_cost():
    cost = {"map50_95_drop": 0.004, "ir_sha256": "abc"}
    choice = EngineChoice(EngineSpec("openvino", "int8"), "explicit", int8=cost)
    record = choice.to_record()
    assert record["int8"] == cost
    assert EngineChoice.from_record(record, "cache").int8 == cost
    assert "int8 costs +0.0040 mAP50-95" in choice.summary()
    assert "int8" not in EngineChoice(EngineSpec("torch", "fp32"), "explicit").to_record()


def _run_quantize(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.quantize", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
@needs_int8_tools
def test_quantize_makes_an_int8_model_that_serves_with_its_measured_cost(
    trained_model_dir, synthetic_dataset, tmp_path, guarded_subprocess_env, engine_cache
):
    model = tmp_path / "model"
    shutil.copytree(trained_model_dir, model)
    env = {**guarded_subprocess_env, "XDG_CACHE_HOME": str(engine_cache)}  # its exports, ours too
    done = _run_quantize(
        env, "--model", str(model), "--dataset", str(synthetic_dataset), "--calibration-images", "16"
    )
    assert done.returncode == 0, done.stderr
    assert "int8 model in" in done.stdout and "drop" in done.stdout

    quantized = find_quantized(model / "best.pt")
    assert quantized is not None and quantized.ir.parent == quantized_dir(model / "best.pt")
    report = quantized.report
    assert report["calibration"]["split"] == "train" and report["calibration"]["images"] == 16
    cost = report["accuracy"]
    assert cost["map50_95_drop"] == pytest.approx(
        cost["fp32"]["map50_95"] - cost["int8"]["map50_95"], abs=1e-5
    )
    # int8 keeps what the model learned (measured -0.006 to +0.01 here); a broken quantisation is ~0.3 off.
    assert abs(cost["map50_95_drop"]) < 0.1 and cost["fp32"]["map50_95"] > 0.2
    card = json.loads((model / "model.json").read_text())
    assert card["extra"]["int8"]["map50_95_drop"] == cost["map50_95_drop"]

    from yolo_core.infer.predictor import Predictor

    served = Predictor.from_model_dir(model, device="cpu", precision="int8", batch_size=2)
    assert served.engine_spec == EngineSpec("openvino", "int8")
    assert served.engine_choice.to_record()["int8"]["map50_95_drop"] == cost["map50_95_drop"]
    frames = [
        __import__("cv2").imread(str(f)) for f in sorted((synthetic_dataset / "images" / "val").iterdir())
    ]
    assert sum(len(d) for d in served.predict(frames, conf=0.25)) > 0

    # "auto" measures int8 beside the others now that its cost is known, and records the cost.
    auto = Predictor.from_model_dir(model, device="cpu", backend="openvino", batch_size=2)
    measured = {m.engine for m in auto.engine_choice.measurements}
    assert EngineSpec("openvino", "int8") in measured
    assert auto.engine_choice.int8["map50_95_drop"] == cost["map50_95_drop"]

    # The same folder with other weights: the int8 model is not theirs, so it is not found.
    (model / "best.pt").write_bytes((model / "best.pt").read_bytes() + b"\0")
    assert find_quantized(model / "best.pt") is None


@needs_int8_tools
def test_int8_without_a_quantised_model_is_one_line_naming_the_command(trained_model_dir, engine_cache):
    from yolo_core.infer.predictor import Predictor

    with pytest.raises(UserInputError, match=r"no int8 model of .*best\.pt.*quantize --model") as caught:
        Predictor.from_model_dir(trained_model_dir, device="cpu", precision="int8", batch_size=2)
    assert "\n" not in str(caught.value)


def test_quantize_refuses_bad_input_with_one_line(tmp_path, guarded_subprocess_env, trained_model_dir):
    missing = _run_quantize(
        guarded_subprocess_env, "--model", str(trained_model_dir), "--dataset", str(tmp_path)
    )
    assert missing.returncode == 1
    assert (
        missing.stderr.strip().splitlines()[-1]
        == f"error: {tmp_path / 'data.yaml'}: data.yaml is missing from the dataset folder"
    )
    assert "Traceback" not in missing.stderr
    zero = _run_quantize(
        guarded_subprocess_env, "--model", "m", "--dataset", "d", "--calibration-images", "0"
    )
    assert zero.returncode == 2 and "--calibration-images" in zero.stderr
    assert not (trained_model_dir / "best-int8").exists()


def test_a_report_of_other_weights_or_an_unreadable_one_is_ignored(tmp_path):
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    folder = quantized_dir(weights)
    folder.mkdir()
    (folder / "model.xml").write_text("<net/>")
    (folder / "model.bin").write_bytes(b"")
    (folder / REPORT_FILE).write_text(json.dumps({"weights_sha256": "0" * 64}))
    assert find_quantized(weights) is None
    (folder / REPORT_FILE).write_text("{not json")
    assert find_quantized(weights) is None
    assert Path(folder).name == "best-int8"


@pytest.mark.slow
@needs_int8_tools
def test_training_asked_for_int8_leaves_it_with_its_cost_in_the_card_and_the_engine_record(
    trained_model_dir, synthetic_dataset, tmp_path, engine_cache
):
    from tests.fixtures_data import FINE_TUNING_HYPERPARAMETERS, LEARNING_HYPERPARAMETERS
    from yolo_core.hyperparams import Hyperparameters
    from yolo_core.train.trainer import TrainingJob, train

    settings = {**LEARNING_HYPERPARAMETERS, **FINE_TUNING_HYPERPARAMETERS, "epochs": 1}
    job = TrainingJob(
        data_yaml=synthetic_dataset / "data.yaml",
        checkpoint_dir=tmp_path / "checkpoints",
        model_dir=tmp_path / "model",
        hyperparameters=Hyperparameters(**settings, tracking_uri="none", int8_calibration_images=8),
        weights=trained_model_dir / "best.pt",
        handle_signals=False,
    )
    outcome = train(job)
    quantized = find_quantized(outcome.model_dir / "best.pt")
    assert quantized is not None and quantized.report["calibration"]["images"] == 8
    assert outcome.card.extra["int8"]["map50_95_drop"] == quantized.map50_95_drop
    # The engine choice training records was measured with int8 among the candidates.
    record = outcome.card.inference_engines[0]
    assert {"backend": "openvino", "precision": "int8"} in [
        {"backend": m["backend"], "precision": m["precision"]} for m in record["measurements"]
    ]
    assert record["int8"]["ir_sha256"] == quantized.digest
