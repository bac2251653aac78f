"""Bad input on the command line: one clear line naming the flag or file, a non-zero exit, no
traceback, and nothing written outside the paths the user gave. Every run here stops before
any real work, so each subprocess takes about a second."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from entrypoints.contract import write_failure
from yolo_core.data.quality import IMAGE_ZERO_BYTES, QualityReport, error
from yolo_core.errors import UserInputError
from yolo_core.model_card import ModelCard

ROOT = Path(__file__).resolve().parent.parent


def _run(env: dict, module: str, *args: str, base: Path | None = None) -> subprocess.CompletedProcess:
    env = {**env, "SAGEMAKER_BASE_DIR": str(base)} if base else env
    command = [sys.executable, "-m", module, *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def _error_line(done: subprocess.CompletedProcess, *needles: str) -> str:
    """stderr is one `error:` line (usage errors too: no usage block), naming every needle."""
    assert done.returncode != 0, done.stdout[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "error: " in lines[0], done.stderr[-2000:]
    assert all(needle in lines[0] for needle in needles), lines[0]
    return lines[0]


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "somefile"
    path.write_text("not a folder")
    return path


@pytest.fixture
def binary_file(tmp_path: Path) -> Path:
    path = tmp_path / "binary.bin"
    path.write_bytes(bytes(range(128, 256)) * 4)
    return path


def _preprocess_outputs(tmp_path: Path) -> list[str]:
    out = tmp_path / "out"
    return [f"--output-{name}={out / name}" for name in ("dataset", "report", "baseline")]


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--synthetic", "2", "--synthetic-object-px", "50,10"], ["--synthetic-object-px", "50"]),
        (
            ["--synthetic", "2", "--synthetic-size", "100x100"],
            ["--synthetic-size", "--synthetic-object-px", "at least 128 px"],
        ),
        (["--synthetic", "2", "--synthetic-size", "0x0"], ["--synthetic-size", "0x0"]),
        (["--synthetic", "-3"], ["--synthetic", "-3"]),
        (["--max-bad-fraction", "5"], ["--max-bad-fraction", "from 0 to 1"]),
        (["--workers", "-1"], ["--workers", "-1"]),
        (["--tile-overlap", "1.5"], ["--tile-overlap", ">= 0 and < 1"]),
        (["--tile-size", "10"], ["--tile-size", ">= 32"]),
    ],
)
def test_preprocess_rejects_bad_flags(flags, needles, guarded_subprocess_env, tmp_path):
    base = tmp_path / "opt_ml"
    done = _run(
        guarded_subprocess_env,
        "entrypoints.preprocess",
        "--input",
        str(tmp_path / "none"),
        *_preprocess_outputs(tmp_path),
        *flags,
        base=base,
    )
    assert done.returncode == 2  # argparse: a usage error, before any work
    _error_line(done, *needles)
    assert "generating" not in done.stderr
    assert not base.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--output-dataset", "--output-report", "--output-baseline"])
@pytest.mark.parametrize("below", [False, True])
def test_preprocess_output_on_a_file_is_one_line(flag, below, a_file, guarded_subprocess_env, tmp_path):
    target = a_file / "sub" if below else a_file
    done = _run(
        guarded_subprocess_env,
        "entrypoints.preprocess",
        *("--input", str(tmp_path / "none"), "--synthetic", "2", "--synthetic-size", "160x160"),
        *_preprocess_outputs(tmp_path),
        f"{flag}={target}",
        base=tmp_path / "opt_ml",
    )
    _error_line(done, flag, str(target))
    assert a_file.read_text() == "not a folder"


def test_preprocess_on_a_laptop_writes_no_message_under_opt_ml(guarded_subprocess_env, tmp_path):
    """The /opt/ml default of --message-file is for containers: no tree, no message file."""
    base = tmp_path / "opt_ml"  # stands in for /opt/ml, which a laptop does not have
    done = _run(
        guarded_subprocess_env,
        "entrypoints.preprocess",
        *("--input", str(tmp_path / "none"), *_preprocess_outputs(tmp_path)),
        base=base,
    )
    _error_line(done, "input folder is missing or empty")
    assert not base.exists() and not (tmp_path / "out").exists()

    message = tmp_path / "asked" / "message"
    done = _run(
        guarded_subprocess_env,
        "entrypoints.preprocess",
        *("--input", str(tmp_path / "none"), *_preprocess_outputs(tmp_path), "--message-file", str(message)),
        base=base,
    )
    reason = _error_line(done, "input folder is missing or empty").removeprefix("error: ")
    assert message.read_text().strip() == reason and not base.exists()


def test_failure_message_file_only_inside_the_contract_tree(tmp_path: Path) -> None:
    write_failure(tmp_path / "missing" / "output" / "message", "first\nsecond")
    assert not (tmp_path / "missing").exists()
    write_failure(tmp_path / "output" / "message", "first\nsecond")
    assert (tmp_path / "output" / "message").read_text() == "first second\n"
    write_failure(tmp_path / "m", "asked for")
    assert (tmp_path / "m").read_text() == "asked for\n"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--object-px", "50", "10"], "--object-px 50 10"),
        (["--frame-size", "0x0"], "--frame-size"),
        (["--frame-size", "64x64"], "at least 96 px"),
        (["--frames", "0"], "--frames"),
        (["--epochs", "0"], "--epochs"),
        (["--imgsz", "8"], "--imgsz"),
        (["--min-recall", "1.5"], "--min-recall"),
    ],
)
def test_demo_rejects_bad_flags_before_running(args, needle, guarded_subprocess_env, tmp_path):
    work_dir = tmp_path / "demo"
    done = _run(guarded_subprocess_env, "pipeline", "demo", "--work-dir", str(work_dir), *args)
    assert done.returncode == 2
    _error_line(done, needle)
    assert not work_dir.exists()


def test_features_with_a_bad_baseline_names_the_file(binary_file, guarded_subprocess_env, tmp_path):
    not_an_object = tmp_path / "list.json"
    not_an_object.write_text("[1, 2]")
    malformed = tmp_path / "malformed.json"
    malformed.write_text(json.dumps({"per_image": [{"file": "a.jpg"}]}))
    for baseline in (binary_file, not_an_object, malformed):
        done = _run(
            guarded_subprocess_env,
            "pipeline",
            *("features", "--baseline", str(baseline), "--dataset-hash", "abc", "--out", str(tmp_path / "f")),
        )
        _error_line(done, str(baseline))
    assert not (tmp_path / "f").exists()


def test_definition_with_a_binary_config_names_the_file(binary_file, guarded_subprocess_env):
    done = _run(guarded_subprocess_env, "pipeline", "definition", "--config", str(binary_file))
    _error_line(done, str(binary_file), "not UTF-8")


def test_start_checks_parameter_ranges_before_aws(guarded_subprocess_env):
    done = _run(guarded_subprocess_env, "pipeline", "start", "-p", "Epochs=-5")
    _error_line(done, "parameter Epochs", "-5", "at least 1")


def test_local_checks_the_input_before_any_mlflow_run(guarded_subprocess_env, tmp_path):
    work_dir = tmp_path / "work"
    missing = tmp_path / "nonexistent"
    done = _run(
        guarded_subprocess_env,
        "pipeline",
        *("local", "--input", str(missing), "--work-dir", str(work_dir), "--no-register"),
    )
    _error_line(done, "parameter InputDataUri", str(missing), "does not exist")
    assert not work_dir.exists()  # no tracking database, so no parent run


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("5", "must be a JSON object, got int"),
        ("{", "not valid JSON"),
        ('{"class_names": ["car"], "imgsz": "big"}', "field 'imgsz' must be a positive integer"),
        ('{"class_names": ["car"], "imgsz": true}', "field 'imgsz'"),
        ('{"class_names": "car", "imgsz": 320}', "field 'class_names' must be a non-empty list"),
        ('{"class_names": ["car"], "imgsz": 320, "metrics": [1]}', "field 'metrics'"),
        ('{"class_names": ["car"]}', "missing field(s) imgsz"),
    ],
)
def test_model_card_load_names_the_file_and_field(content, needle, tmp_path):
    (tmp_path / "model.json").write_text(content)
    with pytest.raises(UserInputError) as raised:
        ModelCard.load(tmp_path)
    assert str(tmp_path / "model.json") in str(raised.value) and needle in str(raised.value)


def test_model_card_load_reads_a_binary_card_as_a_user_error(binary_file, tmp_path):
    (tmp_path / "model.json").write_bytes(binary_file.read_bytes())
    with pytest.raises(UserInputError, match="not valid JSON"):
        ModelCard.load(tmp_path)


def test_model_card_round_trip(tmp_path):
    card = ModelCard(class_names=["car", "bus"], imgsz=320, metrics={"map50": 0.5})
    card.save(tmp_path)
    assert ModelCard.load(tmp_path) == card


def _report(max_bad: float, seen: int, bad: int) -> QualityReport:
    quarantined = {f"images/{i}.jpg": [IMAGE_ZERO_BYTES] for i in range(bad)}
    issues = [error(name, IMAGE_ZERO_BYTES, "empty file") for name in quarantined]
    return QualityReport("src", "visdrone", max_bad, seen, quarantined, issues, Counter())


def test_failure_reason_says_which_rule_failed(tmp_path):
    all_bad = _report(1.0, 1, 1)
    assert not all_bad.passed
    reason = all_bad.failure_reason(tmp_path / "r.json")
    assert reason.startswith("1 of 1 images are bad (no good image is left")
    assert "> max_bad_fraction" not in reason and "images/0.jpg image_zero_bytes" in reason
    too_many = _report(0.1, 4, 3).failure_reason(tmp_path / "r.json")
    assert "(75.0% > max_bad_fraction 10.0%)" in too_many
    assert _report(0.5, 4, 1).passed
