"""The shared vocabulary (true/false words, precision names, the CPU probe, the one-line rule) and
the one device/precision resolver that training and inference both use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from yolo_core import devices
from yolo_core.errors import UserInputError, exception_line, one_line
from yolo_core.vocabulary import (
    FALSE_WORDS,
    INFERENCE_PRECISIONS,
    TRAINING_PRECISIONS,
    TRUE_WORDS,
    cpu_flags,
    cpu_has_amx_bf16,
    parse_bool,
)

AMX_CPU = "processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile\n\nprocessor\t: 1\nflags\t\t: fpu\n"
PLAIN_CPU = "processor\t: 0\nflags\t\t: fpu sse avx2\n"


@pytest.mark.parametrize("word", ["true", "TRUE", " yes ", "On", "1"])
def test_true_words(word: str) -> None:
    assert parse_bool(word, "flag") is True


@pytest.mark.parametrize("word", ["false", "False", " no", "OFF", "0"])
def test_false_words(word: str) -> None:
    assert parse_bool(word, "flag") is False


def test_the_word_sets_do_not_overlap() -> None:
    assert not TRUE_WORDS & FALSE_WORDS
    assert {"true", "false"} <= TRUE_WORDS | FALSE_WORDS


@pytest.mark.parametrize("word", ["maybe", "", "2", "tru"])
def test_a_word_that_is_neither_names_the_field(word: str) -> None:
    with pytest.raises(UserInputError, match=rf"^parameter UseSpot: {word!r} is not true or false$"):
        parse_bool(word, "parameter UseSpot")


def test_precision_names_per_side() -> None:
    assert TRAINING_PRECISIONS == ("auto", "fp32", "amp", "bf16")
    assert INFERENCE_PRECISIONS == ("auto", "fp32", "fp16", "bf16")


def test_the_vocabulary_loads_without_torch() -> None:
    modules = "yolo_core.vocabulary, yolo_core.devices, yolo_core.infer.choices"
    code = f"import sys, {modules}; print('torch' in sys.modules)"
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_cpu_probe_reads_cpuinfo_never_assumes(tmp_path: Path) -> None:
    amx, plain = tmp_path / "amx", tmp_path / "plain"
    amx.write_text(AMX_CPU)
    plain.write_text(PLAIN_CPU)
    assert cpu_flags(amx) == {"fpu", "sse", "avx512f", "amx_bf16", "amx_tile"}  # the first CPU's
    assert cpu_has_amx_bf16(amx)
    assert cpu_flags(plain) == {"fpu", "sse", "avx2"}
    assert not cpu_has_amx_bf16(plain)
    assert cpu_flags(tmp_path / "missing") == set()
    assert not cpu_has_amx_bf16(tmp_path / "missing")


def test_one_line_rule_joins_rather_than_cuts() -> None:
    assert one_line("first\n  second\tthird ") == "first second third"
    assert exception_line(ValueError("bad\nvalue")) == "bad value"
    assert exception_line(KeyError()) == "KeyError"


# --- the resolver ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "on_gpu", "amx", "expected"),
    [
        (devices.TRAINING, True, False, "amp"),
        (devices.TRAINING, False, True, "bf16"),
        (devices.TRAINING, False, False, "fp32"),
        (devices.INFERENCE, True, True, "fp16"),
        (devices.INFERENCE, False, True, "bf16"),
        (devices.INFERENCE, False, False, "fp32"),
    ],
)
def test_auto_precision_follows_the_hardware(names, on_gpu: bool, amx: bool, expected: str) -> None:
    assert devices.resolve_precision("auto", on_gpu=on_gpu, names=names, amx=amx) == expected


def test_auto_reads_the_probe_only_on_a_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(devices, "cpu_has_amx_bf16", lambda: calls.append(1) or True)
    assert devices.resolve_precision("auto", on_gpu=True) == "amp"
    assert calls == []
    assert devices.resolve_precision("auto", on_gpu=False) == "bf16"
    assert calls == [1]


def test_explicit_choices_are_kept_where_the_device_runs_them() -> None:
    assert devices.resolve_precision("bf16", on_gpu=True, names=devices.TRAINING) == "bf16"
    assert devices.resolve_precision("fp32", on_gpu=False, names=devices.TRAINING, amx=False) == "fp32"
    assert devices.resolve_precision("bf16", on_gpu=False, names=devices.TRAINING, amx=True) == "bf16"
    # Inference runs emulated bf16 on a CPU without AMX (slower, still correct); training refuses it.
    assert devices.resolve_precision("bf16", on_gpu=False, names=devices.INFERENCE, amx=False) == "bf16"
    with pytest.raises(UserInputError, match=r"^hyperparameter 'precision': 'bf16' on a CPU needs AMX"):
        devices.resolve_precision("bf16", on_gpu=False, names=devices.TRAINING, amx=False)


@pytest.mark.parametrize(
    ("names", "half", "field"),
    [(devices.INFERENCE, "fp16", "precision"), (devices.TRAINING, "amp", "hyperparameter 'precision'")],
)
def test_half_precision_on_a_cpu_is_refused_naming_the_field(names, half: str, field: str) -> None:
    with pytest.raises(
        UserInputError, match=rf"^{field}: '{half}' needs a GPU; use 'bf16' or 'fp32' on a CPU$"
    ):
        devices.resolve_precision(half, on_gpu=False, names=names, amx=True)


def test_the_other_sides_name_is_not_a_precision() -> None:
    with pytest.raises(UserInputError, match=r"^precision: 'amp' is not one of auto, fp32, fp16, bf16$"):
        devices.resolve_precision("amp", on_gpu=True, names=devices.INFERENCE)
    with pytest.raises(UserInputError, match="'fp16' is not one of auto, fp32, amp, bf16"):
        devices.resolve_precision("fp16", on_gpu=True, names=devices.TRAINING)


def test_device_for_training_and_for_inference_count_gpus_alike() -> None:
    assert devices.resolve_device("", gpu_count=0) == "cpu"
    assert devices.resolve_device("", gpu_count=2) == "0,1"
    assert str(devices.resolve_torch_device("auto", gpu_count=0)) == "cpu"
    assert str(devices.resolve_torch_device("auto", gpu_count=2)) == "cuda:0"
    assert str(devices.resolve_torch_device("1", gpu_count=2)) == "cuda:1"
    with pytest.raises(UserInputError, match=r"^device 'cuda:0': no CUDA GPU is available$"):
        devices.resolve_torch_device("0", gpu_count=0)
    with pytest.raises(UserInputError, match=r"'device': GPU\(s\) \['1'\] requested, 1 visible"):
        devices.resolve_device("1", gpu_count=1)
