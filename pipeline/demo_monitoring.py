"""The demo's monitoring stage: normal traffic, then a drifted batch, to the local production server,
and the monitoring pipeline run over what it captured after each, so the alert is seen arriving.

Normal traffic is new synthetic frames from the training set's generator (other seeds); the drifted
batch is more of them, darker and blurred, as at dusk with a slow shutter. Each monitoring run reads
one batch: its capture lines are copied into a window folder of their own (what a time window does
on a longer stream), under <work dir>/monitoring/windows/<batch>.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2

from pipeline.aws import AwsClients
from pipeline.monitoring.local import (
    References,
    provision_alert_route,
    receive_alerts,
    run_monitoring_locally,
)
from yolo_core.data.images_io import read_prepared_image
from yolo_core.errors import UserInputError
from yolo_core.monitoring.shifts import blurred, darker
from yolo_core.serving.app import INFERENCE_ID_HEADER

DRIFT_GAIN, DRIFT_BLUR_SIGMA = 0.5, 1.5
CAPTURE_WAIT_S = 30.0


def send_frames(
    url: str, frames: list[Path], transform: Callable | None = None, conf: float | None = None
) -> int:
    """POST each frame (transformed first, when given) as a JPEG with its own inference id (and
    X-Conf, when given: the conf the model was registered at)."""
    for frame in frames:
        image = read_prepared_image(frame)
        if transform is not None:
            image = transform(image)
        ok, jpeg = cv2.imencode(".jpg", image)
        if not ok:
            raise UserInputError(f"{frame}: cannot encode as JPEG")
        request = urllib.request.Request(
            f"{url}/invocations",
            data=jpeg.tobytes(),
            headers={
                "Content-Type": "image/jpeg",
                INFERENCE_ID_HEADER: uuid.uuid4().hex,
                **({"X-Conf": str(conf)} if conf is not None else {}),
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
    return len(frames)


def captured_lines(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*.jsonl") for line in path.open() if line.strip())


def wait_for_capture(folder: Path, expected: int, timeout_s: float = CAPTURE_WAIT_S) -> None:
    """The server writes captures from a background thread: wait until every line is on disk."""
    deadline = time.monotonic() + timeout_s
    while captured_lines(folder) < expected:
        if time.monotonic() > deadline:
            raise UserInputError(
                f"{folder}: {captured_lines(folder)} of {expected} captures after {timeout_s:.0f} s"
            )
        time.sleep(0.2)


def drifted(image: Any) -> Any:
    return blurred(darker(image, DRIFT_GAIN), DRIFT_BLUR_SIGMA)


def monitor_traffic(
    config: Any,
    work_dir: Path,
    url: str,
    capture: Path,
    references: References,
    frames: list[Path],
    tracking_uri: str,
    say: Callable[[str], None],
    conf: float | None = None,
) -> list[dict]:
    """Send half the frames as they are, monitor; the other half drifted, monitor; the alerts."""
    clients = AwsClients(config.region)
    queue = provision_alert_route(clients, config)
    half = len(frames) // 2
    runs = []
    for label, batch, transform in (("normal", frames[:half], None), ("drifted", frames[half:], drifted)):
        already = captured_lines(capture) if capture.exists() else 0
        sent = send_frames(url, batch, transform, conf)
        wait_for_capture(capture, already + sent)
        window = copy_window(capture, already, work_dir / "monitoring" / "windows" / label)
        say(f"sent {sent} {label} frames to production; monitoring those {window} requests")
        run = run_monitoring_locally(
            config,
            work_dir / "monitoring",
            work_dir / "monitoring" / "windows" / label,
            references,
            tracking_uri=tracking_uri,
            emit=lambda _: None,
        )
        summary = run.summary
        features = json.loads((Path(run.results) / "constraint_violations.json").read_text())["violations"]
        say(
            f"  {summary['violations']} of {summary['checks']} checks violated "
            f"{sorted(v['feature_name'] for v in features)}; report: {run.results}/report.html"
        )
        alerts = receive_alerts(clients, queue, wait_s=2)
        for alert in alerts:
            detail = alert["detail"]
            say(f"  ALERT on the queue ({alert['detail-type']}): {detail['violation_count']} violations")
        if not alerts:
            say("  no alert on the queue")
        runs.append({"label": label, **summary, "alerts": len(alerts)})
    return runs


def copy_window(capture: Path, skip: int, target: Path) -> int:
    """The capture lines after the first `skip` (in SageMaker's hourly order) into `target`, one
    .jsonl file: a window of what came since. Returns how many lines it holds."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    lines = [line for path in sorted(capture.rglob("*.jsonl")) for line in path.open() if line.strip()]
    (target / "window.jsonl").write_text("".join(lines[skip:]))
    return len(lines) - skip
