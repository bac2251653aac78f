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
    cpu_has_bf16_instructions,
    cpu_model_name,
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
    assert INFERENCE_PRECISIONS == ("auto", "fp32", "fp16", "bf16", "int8")


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
    assert cpu_has_amx_bf16(amx) and cpu_has_bf16_instructions(amx)
    zen4 = tmp_path / "zen4"
    zen4.write_text("model name\t: AMD EPYC 9R14\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert cpu_has_bf16_instructions(zen4) and not cpu_has_amx_bf16(zen4)
    assert cpu_model_name(zen4) == "AMD EPYC 9R14" and cpu_model_name(tmp_path / "missing") == "unknown"
    assert not cpu_has_bf16_instructions(plain)
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
    ("on_gpu", "native", "pays", "expected"),
    [
        (True, False, None, "amp"),
        (False, True, True, "bf16"),  # bf16 instructions, and measured faster
        (False, True, False, "fp32"),  # bf16 instructions, but not faster for this model
        (False, False, True, "fp32"),  # emulated bf16 is never picked
        (False, True, None, "fp32"),  # not measured: fp32
    ],
)
def test_auto_precision_follows_the_hardware_and_the_measurement(on_gpu, native, pays, expected) -> None:
    measured = None if pays is None else (lambda: pays)
    chosen = devices.resolve_precision("auto", on_gpu=on_gpu, bf16_native=native, bf16_pays=measured)
    assert chosen == expected


def test_auto_measures_only_on_a_cpu_with_bf16_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    probes, measured = [], []
    monkeypatch.setattr(devices, "cpu_has_bf16_instructions", lambda: probes.append(1) or True)

    def pays() -> bool:
        measured.append(1)
        return True

    assert devices.resolve_precision("auto", on_gpu=True, bf16_pays=pays) == "amp"
    assert probes == measured == []
    assert devices.resolve_precision("fp32", on_gpu=False, bf16_pays=pays) == "fp32"
    assert probes == measured == []
    assert devices.resolve_precision("auto", on_gpu=False, bf16_pays=pays) == "bf16"
    assert probes == measured == [1]
    assert devices.resolve_precision("auto", on_gpu=False, bf16_native=False, bf16_pays=pays) == "fp32"
    assert measured == [1]


def test_explicit_choices_are_kept_where_the_device_runs_them() -> None:
    assert devices.resolve_precision("bf16", on_gpu=True) == "bf16"
    assert devices.resolve_precision("fp32", on_gpu=False, bf16_native=False) == "fp32"
    assert devices.resolve_precision("bf16", on_gpu=False, bf16_native=True) == "bf16"
    with pytest.raises(
        UserInputError, match=r"^hyperparameter 'precision': 'bf16' on a CPU needs bf16 instructions"
    ):
        devices.resolve_precision("bf16", on_gpu=False, bf16_native=False)


def test_half_precision_on_a_cpu_is_refused_naming_the_field() -> None:
    with pytest.raises(
        UserInputError, match=r"^hyperparameter 'precision': 'amp' needs a GPU; use 'bf16' or 'fp32'"
    ):
        devices.resolve_precision("amp", on_gpu=False, bf16_native=True)


def test_the_other_sides_name_is_not_a_precision() -> None:
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
