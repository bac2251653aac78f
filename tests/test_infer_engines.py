"""The engine choice: which engines a host offers, the pure pick, OpenVINO's agreement, the cache.

The candidates and the pick are pure functions, tested on described hosts (an AMX Xeon, an EPYC
with AVX-512 BF16, a CPU with neither, a GPU): what each offers does not depend on the machine
running the tests. The measured choice runs the real engines of this machine on a trained model.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from yolo_core.errors import UserInputError
from yolo_core.infer.agreement import Agreement, engine_agreement
from yolo_core.infer.engine_candidates import REFERENCE, EngineSpec, engine_candidates, native_engines
from yolo_core.infer.engine_choice import EngineCache, Measurement, pick_engine, probe_frames
from yolo_core.infer.host import Host, probe_host
from yolo_core.infer.predictor import Predictor

ALL = {"torch": "2", "onnx": "1", "openvino": "2026"}
AMX_XEON = Host("cpu", "Intel Xeon", cpu_bf16=True, threads=2, versions=ALL, openvino_bf16=True)
PLAIN_CPU = Host("cpu", "AMD EPYC", cpu_bf16=False, threads=2, versions=ALL, openvino_bf16=False)
GPU = Host("cuda:0", "Intel Xeon", True, 16, gpu="H100", versions={"torch": "2", "tensorrt": "11"})


def names(specs: list[EngineSpec]) -> list[str]:
    return [spec.name for spec in specs]


def test_each_host_offers_what_it_runs_natively():
    assert names(native_engines(AMX_XEON)) == [
        "torch fp32", "torch bf16", "onnx fp32", "openvino fp32", "openvino bf16",
    ]  # fmt: skip
    # No bf16 instructions: bf16 would be emulated (20x slower), so it is never a candidate.
    assert names(native_engines(PLAIN_CPU)) == ["torch fp32", "onnx fp32", "openvino fp32"]
    assert names(native_engines(replace(PLAIN_CPU, versions={"torch": "2"}))) == ["torch fp32"]
    assert names(native_engines(GPU)) == ["torch fp32", "torch fp16", "tensorrt fp16", "tensorrt fp32"]
    assert native_engines(AMX_XEON)[0] == REFERENCE


def test_a_request_narrows_the_candidates():
    assert names(engine_candidates(AMX_XEON, "openvino", "auto")) == ["openvino fp32", "openvino bf16"]
    assert names(engine_candidates(AMX_XEON, "auto", "fp32")) == [
        "torch fp32", "onnx fp32", "openvino fp32",
    ]  # fmt: skip
    assert names(engine_candidates(AMX_XEON, "onnx", "fp32")) == ["onnx fp32"]
    # Asked for, torch still runs bf16 where it is emulated: slow, but what was asked.
    assert names(engine_candidates(PLAIN_CPU, "auto", "bf16")) == ["torch bf16"]


@pytest.mark.parametrize(
    ("host", "backend", "precision", "reason"),
    [
        (PLAIN_CPU, "openvino", "bf16", "OpenVINO finds no bf16 support"),
        (PLAIN_CPU, "onnx", "bf16", "runs fp32 only"),
        (replace(GPU, versions={"torch": "2"}), "tensorrt", "fp16", "pip install tensorrt"),
        (PLAIN_CPU, "tensorrt", "fp16", "needs a CUDA GPU"),
        (PLAIN_CPU, "torch", "fp16", "needs a GPU"),
        (replace(PLAIN_CPU, versions={"torch": "2"}), "openvino", "auto", "pip install openvino"),
        (GPU, "openvino", "fp32", "runs on the CPU"),
        (PLAIN_CPU, "tflite", "auto", "backend must be one of"),
        (PLAIN_CPU, "auto", "int4", "precision must be one of"),
    ],
)
def test_a_choice_the_host_cannot_run_is_a_one_line_error(host, backend, precision, reason):
    with pytest.raises(UserInputError, match=reason) as caught:
        engine_candidates(host, backend, precision)
    assert "\n" not in str(caught.value)


def _measured(name: str, speed: float, agrees: float | None = 1.0, error: str = "") -> Measurement:
    backend, precision = name.split()
    agreement = None if agrees is None else Agreement(agrees, agrees, "boxes", 40)
    return Measurement(EngineSpec(backend, precision), speed, agreement, error)


def test_the_pick_is_the_fastest_that_agrees_with_fp32():
    measurements = [
        _measured("torch fp32", 37, None),
        _measured("openvino bf16", 140, agrees=0.95),  # fastest, but its boxes moved: never picked
        _measured("torch bf16", 90),
        _measured("onnx fp32", 0, error="no provider"),
        _measured("openvino fp32", 60),
    ]
    assert pick_engine(measurements).engine.name == "torch bf16"
    assert pick_engine(measurements, min_agreement=0.9).engine.name == "openvino bf16"
    assert pick_engine(measurements[:1]).engine == REFERENCE
    with pytest.raises(UserInputError, match="no inference engine ran the model here"):
        pick_engine([_measured("onnx fp32", 0, error="no provider")])


def test_agreement_compares_confident_boxes_both_ways_and_falls_back_to_raw_scores():
    rng = np.random.default_rng(0)
    raw = np.zeros((1, 6, 400), np.float32)  # 4 box coordinates, 2 classes, 400 anchors
    centres = rng.uniform(50, 590, (2, 400))
    raw[0, 0:2] = centres
    raw[0, 2:4] = 20
    raw[0, 4] = rng.uniform(0, 0.05, 400)
    raw[0, 4, :30] = np.linspace(0.5, 0.9, 30)  # 30 confident, well separated boxes (most of them)
    import torch

    same = engine_agreement(torch.from_numpy(raw), torch.from_numpy(raw))
    assert same.method == "boxes" and same.holds(0.98)
    moved = raw.copy()
    moved[0, 0, :30] += 25  # every confident box shifted by more than its width
    assert not engine_agreement(torch.from_numpy(moved), torch.from_numpy(raw)).holds(0.5)
    dim = raw.copy()
    dim[0, 4, :30] = 0.2  # too few confident boxes to judge: the raw scores decide
    judged = engine_agreement(torch.from_numpy(dim), torch.from_numpy(dim))
    assert judged.method == "raw scores" and judged.holds(0.98)
    shifted_scores = dim.copy()
    shifted_scores[0, 4] += 0.2
    assert not engine_agreement(torch.from_numpy(shifted_scores), torch.from_numpy(dim)).holds(0.5)


def test_openvino_is_imported_without_its_telemetry(guarded_subprocess_env):
    """`import openvino` sends a usage event unless opted out (the network guard reports it): the
    toolkit's import leaves its telemetry package out, in a fresh process, as a server starts."""
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed")
    code = (
        "import sys; from yolo_core.runtime import import_openvino; ov = import_openvino(); "
        "ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'); "
        "print(sys.modules.get('openvino_telemetry'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=guarded_subprocess_env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


def test_auto_measures_once_then_reads_the_cache_or_the_model_card(trained_model_dir, engine_cache, tmp_path):
    first = Predictor.from_model_dir(trained_model_dir, device="cpu", batch_size=2)
    choice = first.engine_choice
    assert choice.source == "measured" and choice.engine == first.engine_spec
    host = probe_host(first.device, choice.host["threads"])
    assert {m.engine for m in choice.measurements} == set(engine_candidates(host))
    assert all(m.images_per_s > 0 for m in choice.measurements if not m.error)
    assert pick_engine(choice.measurements).engine == choice.engine
    assert EngineCache().get(choice.key)["engine"] == choice.engine.to_dict()

    again = Predictor.from_model_dir(trained_model_dir, device="cpu", batch_size=2)
    assert again.engine_choice.source == "cache" and again.engine_spec == choice.engine
    # Another batch size is another question: measured anew.
    other = Predictor.from_model_dir(trained_model_dir, device="cpu", batch_size=3)
    assert other.engine_choice.source == "measured" and other.engine_choice.key != choice.key

    # A card carrying the record (as training writes it) spares a fresh cache the measurement.
    for path in Path(engine_cache).rglob("engines/*.json"):
        path.unlink()
    card = json.loads((trained_model_dir / "model.json").read_text())
    carded = tmp_path / "carded"
    carded.mkdir()
    (carded / "best.pt").write_bytes((trained_model_dir / "best.pt").read_bytes())
    (carded / "model.json").write_text(json.dumps({**card, "inference_engines": [choice.to_record()]}))
    from_card = Predictor.from_model_dir(carded, device="cpu", batch_size=2)
    assert from_card.engine_choice.source == "model card" and from_card.engine_spec == choice.engine


def test_explicit_choices_win_without_measuring(trained_model_dir, engine_cache):
    predictor = Predictor.from_model_dir(
        trained_model_dir, device="cpu", backend="torch", precision="fp32", batch_size=2
    )
    assert predictor.engine_choice.source == "explicit" and predictor.engine_choice.measurements == ()
    assert not list(Path(engine_cache).rglob("engines/*.json"))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_openvino_gives_the_boxes_of_torch_fp32(trained_model_dir, synthetic_dataset, precision):
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed")
    from tests.test_infer_predictor import CONFIDENT, LOW, agree_both_ways

    host = probe_host(__import__("torch").device("cpu"), 2)
    if precision == "bf16" and not host.openvino_bf16:
        pytest.skip("OpenVINO finds no bf16 support on this CPU (checked: the request is refused)")
    reference = Predictor.from_model_dir(
        trained_model_dir, device="cpu", backend="torch", precision="fp32", batch_size=4
    )
    engine = Predictor.from_model_dir(
        trained_model_dir, device="cpu", backend="openvino", precision=precision, batch_size=4
    )
    assert engine.engine_spec == EngineSpec("openvino", precision)
    frames = probe_frames(320, 320, 4)
    import cv2

    from yolo_core.evaluation.ground_truth import load_split

    frames += [cv2.imread(str(f)) for f in load_split(synthetic_dataset, "val").image_files[:4]]
    found = engine.predict(frames, conf=LOW)
    expected = reference.predict(frames, conf=LOW)
    assert sum(int((d.scores >= CONFIDENT).sum()) for d in expected) > 0
    for a, b in zip(found, expected, strict=True):
        assert agree_both_ways(a, b)


def _main_thread_signal_stack() -> tuple[int, int, int]:
    """(address, size, flags) of this thread's alternate signal stack (Linux sigaltstack)."""
    import ctypes

    class StackT(ctypes.Structure):
        _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

    current = StackT()
    assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(current)) == 0
    return current.ss_sp or 0, current.ss_size, current.ss_flags


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack is read the Linux way")
def test_an_openvino_engine_leaves_the_callers_signal_stack_alone(trained_model_dir, engine_cache):
    """OpenVINO's compile installs an alternate signal stack on its calling thread, which could be
    freed before the next SIGTERM arrives (a training process then died with SIGSEGV instead of
    checkpointing): the engine compiles on a thread of its own."""
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed")
    from yolo_core.infer.openvino_backend import OpenVinoEngine

    before = _main_thread_signal_stack()
    engine = OpenVinoEngine(trained_model_dir / "best.pt", 160, __import__("torch").device("cpu"), "fp32", 2)
    engine.forward(np.zeros((3, 160, 160, 3), np.uint8))
    assert _main_thread_signal_stack() == before
