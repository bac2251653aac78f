"""`python -m entrypoints.preprocess` as a real subprocess in a temporary /opt/ml tree."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from data_support import write_image, write_text

from entrypoints import preprocess
from yolo_core.data import generate_scenes


def _preprocess(env: dict, base, *args: str) -> subprocess.CompletedProcess:
    env = {**env, "SAGEMAKER_BASE_DIR": str(base)}
    command = [sys.executable, "-m", "entrypoints.preprocess", "--no-progress", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)


def _main(*args: str) -> int:
    """Run the entry point in this process (cheap); real subprocesses are below."""
    with pytest.raises(SystemExit) as exit_info:
        preprocess.main(["--no-progress", *args])
    return exit_info.value.code


def test_help_documents_the_contract(capsys, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", "/opt/ml")
    assert _main("--help") == 0
    text = capsys.readouterr().out
    for expected in (
        "/opt/ml/processing/input/data",
        "/opt/ml/processing/output/dataset",
        "--tile-size",
        "--synthetic",
    ):
        assert expected in text


def test_contract_paths_on_a_visdrone_input(guarded_subprocess_env, tmp_path):
    base = tmp_path / "opt_ml"
    generate_scenes(
        base / "processing" / "input" / "data", 6, seed=2, width=320, height=320, object_px=(14, 48)
    )
    done = _preprocess(guarded_subprocess_env, base, "--tile-size", "160")
    assert done.returncode == 0, done.stderr
    output = base / "processing" / "output"
    data = yaml.safe_load((output / "dataset" / "data.yaml").read_text())
    assert "path" not in data and (output / "dataset" / data["train"]).is_dir()
    assert json.loads((output / "report" / "quality_report.json").read_text())["passed"] is True
    assert json.loads((output / "baseline" / "baseline.json").read_text())["image_count"] == 6
    assert str(output / "dataset" / "data.yaml") in done.stdout
    assert not (base / "output" / "message").exists()


def test_synthetic_default_with_overridden_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "unused"))
    out = tmp_path / "out"
    code = _main(
        *("--input", str(tmp_path / "nothing-here"), "--synthetic", "6", "--synthetic-size", "256x192"),
        *(
            "--output-dataset",
            str(out / "ds"),
            "--output-report",
            str(out / "r"),
            "--output-baseline",
            str(out / "b"),
        ),
    )
    assert code == 0
    assert (out / "ds" / "data.yaml").is_file() and (out / "r" / "quality_report.json").is_file()
    baseline = json.loads((out / "b" / "baseline.json").read_text())
    assert baseline["images"]["width"]["p50"] == 256
    assert not (tmp_path / "unused").exists()


def test_broken_input_exits_1_with_a_one_line_reason(guarded_subprocess_env, tmp_path):
    base = tmp_path / "opt_ml"
    source = base / "processing" / "input" / "data"
    write_image(source / "images" / "good.jpg")
    write_text(source / "annotations" / "good.txt", "1,1,10,10,1,4,0,0\n")
    for i in range(3):
        (source / "images" / f"broken{i}.jpg").write_bytes(b"")
        write_text(source / "annotations" / f"broken{i}.txt", "1,1,10,10,1,4,0,0\n")
    done = _preprocess(guarded_subprocess_env, base)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 3 of 4 images are bad"), done.stderr
    assert "images/broken0.jpg image_zero_bytes" in lines[0]
    assert (base / "output" / "message").read_text().strip() == lines[0].removeprefix("error: ")
    report = json.loads((base / "processing" / "output" / "report" / "quality_report.json").read_text())
    assert len(report["quarantined"]) == 3


def test_missing_input_without_synthetic_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    assert _main("--input", str(tmp_path / "none")) == 1
    reason = f"{tmp_path / 'none'}: input folder is missing or empty (use --synthetic N for a demo)"
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {reason}"]
    assert (tmp_path / "output" / "message").read_text().strip() == reason


def test_all_bad_with_any_share_allowed_says_no_good_image_is_left(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path / "no-opt-ml"))
    source = tmp_path / "raw"
    (source / "images").mkdir(parents=True)
    (source / "images" / "broken.jpg").write_bytes(b"")
    write_text(source / "annotations" / "broken.txt", "1,1,10,10,1,4,0,0\n")
    out = tmp_path / "out"
    outputs = [f"--output-{name}={out / name}" for name in ("dataset", "report", "baseline")]
    assert _main("--input", str(source), "--max-bad-fraction", "1", *outputs) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: 1 of 1 images are bad (no good image is left"), line
    assert (out / "report" / "quality_report.json").is_file()
    assert not (tmp_path / "no-opt-ml").exists()
