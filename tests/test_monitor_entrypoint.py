"""`monitor` as Model Monitor runs it: a subprocess configured by the contract's environment only,
over data capture written by the server's own capture code, against a baseline of synthetic scenes.

The scenes, their simulated detections and the baseline come from `yolo_core.monitoring.power`
(one seed's baseline frames and the served window after them); requests are lossless PNGs, so the
served images measure as the baseline's frames did and an unshifted window must pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import pytest

from pipeline.monitoring.alerts import read_violations
from pipeline.monitoring.metrics import read_metric_lines
from yolo_core.data.json_io import write_json
from yolo_core.data.visdrone_classes import NAMES
from yolo_core.monitoring.constraints import constraints_document
from yolo_core.monitoring.power import BASELINE_FRAMES, SERVED_FRAMES, Frame, baseline_documents, render
from yolo_core.monitoring.shifts import darker
from yolo_core.serving.batcher import BatchResult
from yolo_core.serving.capture import CapturedExchange, DataCapture, capture_record
from yolo_core.serving.stages import captured_exchange, encode_response

ROOT = Path(__file__).resolve().parent.parent
SEED = 0
ENDPOINT, VARIANT, SCHEDULE = "drone-yolo-prod", "AllTraffic", "drone-yolo-drift"
CONTRACT_ENV = (
    "dataset_source",
    "output_path",
    "baseline_statistics",
    "baseline_constraints",
    "start_time",
    "end_time",
    "publish_cloudwatch_metrics",
    "sagemaker_endpoint_name",
    "sagemaker_monitoring_schedule_name",
)


def served_frames(gain: float = 1.0) -> list[Frame]:
    """The window after the baseline's frames, darkened by `gain` (1: as rendered)."""
    frames = [render(SEED, i) for i in range(BASELINE_FRAMES, BASELINE_FRAMES + SERVED_FRAMES)]
    return frames if gain == 1.0 else [Frame(darker(f.image, gain), f.detections) for f in frames]


def exchange(frame: Frame) -> CapturedExchange:
    """What the server captures of one answered PNG request: its stages 4 and 5."""
    ok, png = cv2.imencode(".png", frame.image)
    assert ok
    response = encode_response([frame.image.shape], BatchResult([frame.detections], 1, 1), NAMES, True)
    return captured_exchange("image/png", png.tobytes(), response, str(uuid.uuid4()))


def capture(source: Path, frames: list[Frame]) -> None:
    """Capture `frames` now, with the server's writer, under <endpoint>/<variant>/yyyy/mm/dd/hh."""
    writer = DataCapture(source / ENDPOINT / VARIANT)
    for frame in frames:
        writer.submit(exchange(frame))
    writer.close()
    assert writer.lines_written == len(frames)


def capture_at(source: Path, frames: list[Frame], when: datetime, timeless: int = 0) -> None:
    """Capture records stamped `when` (the first `timeless` with no inferenceTime at all)."""
    records = [capture_record(exchange(frame), when) for frame in frames]
    for record in records[:timeless]:
        del record["eventMetadata"]["inferenceTime"]
    folder = source / ENDPOINT / VARIANT / when.strftime("%Y/%m/%d/%H")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "earlier.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture(scope="module")
def baseline_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """baseline_statistics (baseline.json) and baseline_constraints (prediction profile, thresholds)."""
    folder = tmp_path_factory.mktemp("baseline")
    baseline, profile = baseline_documents([render(SEED, i) for i in range(BASELINE_FRAMES)])
    return {
        "baseline_statistics": str(write_json(folder / "baseline.json", baseline)),
        "baseline_constraints": str(write_json(folder / "constraints.json", constraints_document(profile))),
    }


@pytest.fixture
def contract(tmp_path: Path, guarded_subprocess_env: dict[str, str]) -> dict[str, str]:
    """The subprocess environment: the guarded one, no inherited contract variables, /opt/ml moved."""
    env = {key: value for key, value in guarded_subprocess_env.items() if key not in CONTRACT_ENV}
    (tmp_path / "opt_ml").mkdir()
    return env | {"SAGEMAKER_BASE_DIR": str(tmp_path / "opt_ml")}


def run_monitor(env: dict[str, str], **contract_env: str) -> subprocess.CompletedProcess[str]:
    """`python -m entrypoints.monitor` with no flags: everything from the contract's variables."""
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.monitor"],
        cwd=ROOT,
        env=env | contract_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def monitor_capture(tmp_path: Path, env: dict[str, str], **contract_env: str) -> tuple[str, Path]:
    """A run over tmp_path/endpointdata that must exit 0 (violations or not): stderr, output_path."""
    output = tmp_path / "resultdata"
    source = str(tmp_path / "endpointdata")
    result = run_monitor(env, dataset_source=source, output_path=str(output), **contract_env)
    assert result.returncode == 0, result.stderr[-2000:]  # violations are a result, not a failure
    return result.stderr, output


def violated(output: Path) -> set[str]:
    """The feature names of constraint_violations.json, read as the alert publisher reads it."""
    return {v["feature_name"] for v in read_violations(output / "constraint_violations.json")}


def metrics_dir(env: dict[str, str]) -> Path:
    return Path(env["SAGEMAKER_BASE_DIR"]) / "output" / "metrics" / "cloudwatch"


def test_an_unshifted_window_has_no_violations_and_publishes_no_metrics_when_disabled(
    tmp_path, contract, baseline_files
):
    capture(tmp_path / "endpointdata", served_frames())
    _, output = monitor_capture(tmp_path, contract, publish_cloudwatch_metrics="Disabled", **baseline_files)
    assert violated(output) == set()
    checks = json.loads((output / "checks.json").read_text())["checks"]
    assert {"image.brightness", "prediction.class_mix"} <= {c["feature_name"] for c in checks}
    statistics = json.loads((output / "statistics.json").read_text())
    assert statistics["dataset"]["item_count"] == SERVED_FRAMES
    assert not metrics_dir(contract).exists()


def test_a_darkened_window_violates_brightness_and_publishes_metric_lines(tmp_path, contract, baseline_files):
    capture(tmp_path / "endpointdata", served_frames(gain=0.6))
    dimensions = {"sagemaker_endpoint_name": ENDPOINT, "sagemaker_monitoring_schedule_name": SCHEDULE}
    _, output = monitor_capture(
        tmp_path, contract, publish_cloudwatch_metrics="Enabled", **dimensions, **baseline_files
    )
    assert "image.brightness" in violated(output)
    lines = read_metric_lines(metrics_dir(contract), ENDPOINT)
    brightness = next(d for d in lines if d["MetricName"] == "feature_baseline_drift_image.brightness")
    assert brightness["Value"] >= 0.1  # the PSI that made it a violation
    assert {(d["Name"], d["Value"]) for d in brightness["Dimensions"]} == {
        ("Endpoint", ENDPOINT),
        ("MonitoringSchedule", SCHEDULE),
    }


def test_records_outside_the_window_or_without_a_time_are_left_out(tmp_path, contract, baseline_files):
    start = datetime.now(UTC) - timedelta(minutes=1)
    capture(tmp_path / "endpointdata", served_frames())
    capture_at(tmp_path / "endpointdata", served_frames(gain=0.6), start - timedelta(hours=2), timeless=5)
    window = {"start_time": start.isoformat(), "end_time": (start + timedelta(hours=1)).isoformat()}
    stderr, output = monitor_capture(tmp_path, contract, **window, **baseline_files)
    assert violated(output) == set()  # the dark frames lay before the window
    assert json.loads((output / "statistics.json").read_text())["dataset"]["item_count"] == SERVED_FRAMES
    assert f"{SERVED_FRAMES} outside the window or without a time" in stderr


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("no dataset_source", "dataset_source"),
        ("missing folder", "dataset_source"),
        ("baseline not JSON", "baseline.json"),
        ("bad start_time", "start_time"),
        ("empty window", "no readable capture records"),
    ],
)
def test_bad_input_is_one_line_naming_it(tmp_path, contract, baseline_files, case, named):
    source = tmp_path / "endpointdata"
    capture(source, served_frames()[:3])
    broken = tmp_path / "broken" / "baseline.json"
    broken.parent.mkdir()
    broken.write_text("per_image: not json\n")
    env = baseline_files | {"dataset_source": str(source), "output_path": str(tmp_path / "resultdata")}
    env |= {
        "no dataset_source": {"dataset_source": ""},
        "missing folder": {"dataset_source": str(tmp_path / "nowhere")},
        "baseline not JSON": {"baseline_statistics": str(broken)},
        "bad start_time": {"start_time": "yesterday"},
        "empty window": {"start_time": "2001-01-01T00:00:00Z", "end_time": "2001-01-01T01:00:00Z"},
    }[case]
    result = run_monitor(contract, **{key: value for key, value in env.items() if value})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and named in line
    message = Path(contract["SAGEMAKER_BASE_DIR"]) / "output" / "message"
    assert message.read_text().strip() == line.removeprefix("error: ")


REGISTERED = {  # what evaluation.json registered, at the serving conf the quality checks compare at
    "metrics": {
        name: {"value": value, "conf": 0.25}
        for name, value in (("served_map50_95", 0.9), ("precision_pooled", 0.95), ("recall_pooled", 0.9))
    },
    "serving_conf": 0.25,
}


def labelled_capture(source: Path, frames: list[Frame], label_offset_px: float) -> Path:
    """Capture `frames` with inference ids, and write their ground truth (the frames' own boxes,
    moved by `label_offset_px`: 0 labels the answers right, 60 makes every answer a miss)."""
    writer = DataCapture(source / ENDPOINT / VARIANT)
    lines = []
    for number, frame in enumerate(frames):
        ok, png = cv2.imencode(".png", frame.image)
        assert ok
        response = encode_response([frame.image.shape], BatchResult([frame.detections], 1, 1), NAMES, True)
        writer.submit(captured_exchange("image/png", png.tobytes(), response, f"request-{number}"))
        labels = [
            {"class_id": int(class_id), "box": [float(v) + label_offset_px for v in box]}
            for box, class_id in zip(frame.detections.boxes, frame.detections.class_ids, strict=True)
        ]
        data = json.dumps({"labels": labels})
        lines.append(
            {
                "groundTruthData": {"data": data, "encoding": "JSON"},
                "eventMetadata": {"eventId": f"request-{number}"},
            }
        )
    writer.close()
    truth = source.parent / "ground_truth.jsonl"
    truth.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return truth


@pytest.mark.parametrize(("offset", "worse"), [(0.0, False), (60.0, True)])
def test_ground_truth_adds_the_model_quality_checks(tmp_path, contract, baseline_files, offset, worse):
    truth = labelled_capture(tmp_path / "endpointdata", served_frames(), offset)
    _, profile = baseline_documents([render(SEED, i) for i in range(BASELINE_FRAMES)])
    constraints = write_json(
        tmp_path / "constraints.json", constraints_document(profile, registered_evaluation=REGISTERED)
    )
    files = {**baseline_files, "baseline_constraints": str(constraints), "ground_truth_source": str(truth)}
    _, output = monitor_capture(tmp_path, contract, **files)
    quality = {"quality.map50_95", "quality.precision", "quality.recall"}
    checks = {c["feature_name"] for c in json.loads((output / "checks.json").read_text())["checks"]}
    assert quality <= checks
    assert (quality <= violated(output)) if worse else not (quality & violated(output))
    run = json.loads((output / "run.json").read_text())
    assert run["quality"]["images"] == SERVED_FRAMES and not run["quality"]["unmatched"]
