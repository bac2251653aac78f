"""`evaluate` as SageMaker Processing runs it: a real subprocess over a temp /opt/ml tree."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from yolo_core.monitoring.constraints import CONSTRAINTS_FILE, read_constraints
from yolo_core.monitoring.embedding_drift import reference_vectors

ROOT = Path(__file__).resolve().parent.parent


def run_evaluate(base: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.evaluate", *args],
        cwd=ROOT,
        env={**env, "SAGEMAKER_BASE_DIR": str(base)},
        capture_output=True,
        text=True,
        timeout=600,
    )


def make_tarball(model_dir: Path, target: Path) -> Path:
    """As SageMaker packs /opt/ml/model: the folder's files at the archive root."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as tar:
        for item in sorted(model_dir.iterdir()):
            tar.add(item, arcname=item.name)
    return target


def processing_inputs(base: Path, dataset: Path) -> Path:
    inputs = base / "processing" / "input"
    inputs.mkdir(parents=True)
    (inputs / "dataset").symlink_to(dataset, target_is_directory=True)
    return inputs


def assert_report(folder: Path) -> dict:
    report = json.loads((folder / "evaluation.json").read_text())
    assert report["metrics"]["map50"]["value"] > 0.3
    assert report["coco_check"]["passed"] and report["coco_check"]["map50_95"]["difference"] <= 0.01
    assert (folder / "pr_curve.png").exists() and (folder / "confusion_matrix.png").exists()
    assert_monitoring_reference(folder, report)
    return report


def assert_monitoring_reference(folder: Path, report: dict) -> None:
    """Beside the report: the model's answers, embeddings and metrics the monitor compares with."""
    constraints = read_constraints(folder / CONSTRAINTS_FILE)
    assert constraints.registered_evaluation["metrics"] == report["metrics"]
    profile = constraints.prediction_profile
    assert profile["image_count"] == report["dataset"]["images"] and sum(profile["class_counts"].values()) > 0
    vectors = reference_vectors(constraints.embedding_reference, "embedding_reference")
    assert vectors.shape[0] == report["dataset"]["images"] and vectors.shape[1] > 0


@pytest.mark.slow
def test_evaluates_a_model_tarball_at_the_contract_paths(
    trained_model_dir, synthetic_dataset, tmp_path, guarded_subprocess_env
):
    inputs = processing_inputs(tmp_path, synthetic_dataset)
    make_tarball(trained_model_dir, inputs / "model" / "model.tar.gz")
    result = run_evaluate(tmp_path, guarded_subprocess_env, "--device", "cpu")
    assert result.returncode == 0, result.stderr[-2000:]
    assert_report(tmp_path / "processing" / "output" / "evaluation")


@pytest.mark.slow
def test_evaluates_a_model_folder_given_by_flags(
    trained_model_dir, synthetic_dataset, tmp_path, guarded_subprocess_env
):
    out = tmp_path / "elsewhere"
    result = run_evaluate(
        tmp_path / "unused",
        guarded_subprocess_env,
        *("evaluate", "--model", str(trained_model_dir), "--dataset", str(synthetic_dataset)),
        *("--output", str(out), "--device", "cpu", "--batch-size", "4"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert_report(out)


def _model_without_card(model_dir: Path, base: Path) -> None:
    folder = base / "processing" / "input" / "model"
    folder.mkdir(parents=True)
    (folder / "best.pt").write_bytes((model_dir / "best.pt").read_bytes())


def _corrupt_tarball(model_dir: Path, base: Path) -> None:
    good = make_tarball(model_dir, base / "good.tar.gz").read_bytes()
    target = base / "processing" / "input" / "model" / "model.tar.gz"
    target.parent.mkdir(parents=True)
    target.write_bytes(good[: len(good) // 2])


def _dataset_without_yaml(model_dir: Path, base: Path) -> None:
    make_tarball(model_dir, base / "processing" / "input" / "model" / "model.tar.gz")
    (base / "processing" / "input" / "dataset" / "images" / "val").mkdir(parents=True)


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        (_model_without_card, "model.json is missing"),
        (_corrupt_tarball, "not a readable model archive"),
        (_dataset_without_yaml, "data.yaml is missing"),
    ],
)
def test_bad_inputs_exit_1_with_a_one_line_reason(
    breakage, reason, trained_model_dir, synthetic_dataset, tmp_path, guarded_subprocess_env
):
    breakage(trained_model_dir, tmp_path)
    if not (tmp_path / "processing" / "input" / "dataset").exists():
        (tmp_path / "processing" / "input" / "dataset").symlink_to(
            synthetic_dataset, target_is_directory=True
        )
    result = run_evaluate(tmp_path, guarded_subprocess_env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], result.stderr[-2000:]
    assert reason in (tmp_path / "output" / "message").read_text()
    assert not (tmp_path / "processing" / "output" / "evaluation" / "evaluation.json").exists()


def test_a_cross_check_disagreement_exits_1_naming_both_figures(
    trained_model_dir, synthetic_dataset, tmp_path, monkeypatch, capsys
):
    """In-process, so that pycocotools can be fed misplaced ground truth: the real comparison
    then finds the disagreement, and the entry point must fail the step with it."""
    from entrypoints.evaluate import main
    from yolo_core.evaluation import evaluate as evaluate_module
    from yolo_core.evaluation.ground_truth import GroundTruth

    real_coco_map = evaluate_module.coco_map

    def misplaced(preds, truths, names, max_det):
        return real_coco_map(preds, [GroundTruth(t.boxes + 8, t.class_ids) for t in truths], names, max_det)

    monkeypatch.setattr(evaluate_module, "coco_map", misplaced)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    inputs = processing_inputs(tmp_path, synthetic_dataset)
    make_tarball(trained_model_dir, inputs / "model" / "model.tar.gz")
    with pytest.raises(SystemExit) as exited:
        main(["--device", "cpu"])
    assert exited.value.code == 1
    stderr = capsys.readouterr().err
    reason = stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr and reason.startswith("error: COCO cross-check failed: "), stderr[-2000:]
    assert "mAP50-95 ours" in reason and "vs pycocotools" in reason and "0.01 tolerance" in reason
    assert (tmp_path / "output" / "message").read_text().strip() == reason.removeprefix("error: ")
