"""The staging tests, written against an invoke function so that the same code tests a local
server (`http_invoker`) and a SageMaker endpoint (`sagemaker_invoker`).

smoke: every content type the model package declares answers 200 with detections of the expected
classes, and a bad request gets a 4xx. accuracy: the held-back labelled set goes through the
endpoint and its mAP50-95 must be within the tolerance of the registered evaluation. latency: p50
and p99 of every call above, recorded (not judged: machines differ).
"""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.deploy.decisions import CheckResult, StagingReport, accuracy_failure
from pipeline.deploy.declaration import CONTENT_TYPES
from yolo_core.retry import RetryPolicy, call_with_retry

# (content type, body, headers) -> (HTTP status, body)
Invoke = Callable[[str, bytes, dict[str, str]], tuple[int, bytes]]
ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
EVALUATION_CONF = 0.001  # the whole precision-recall curve, as the registered evaluation measured it
INVOKE_RETRY = RetryPolicy(max_attempts=3, max_sleep_s=5.0, max_total_s=120.0)
_SUFFIX_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


def http_invoker(url: str, timeout_s: float = 60.0) -> Invoke:
    """POST to `url`/invocations; an HTTP error status is an answer, a refused connection is retried."""

    def post(content_type: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(
            f"{url}/invocations", data=body, method="POST", headers={"Content-Type": content_type, **headers}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    return lambda content_type, body, headers: call_with_retry(
        post, content_type, body, headers, policy=INVOKE_RETRY, what=f"POST {url}/invocations"
    )


def sagemaker_invoker(runtime: Any, endpoint: str) -> Invoke:
    """InvokeEndpoint (its client carries botocore's retry policy); a model error is an answer."""
    from botocore.exceptions import ClientError

    def invoke(content_type: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        extra = {"CustomAttributes": headers[ATTRIBUTES]} if ATTRIBUTES in headers else {}
        try:
            answer = runtime.invoke_endpoint(
                EndpointName=endpoint, ContentType=content_type, Body=body, **extra
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = (
                exc.response.get("OriginalStatusCode") or exc.response["ResponseMetadata"]["HTTPStatusCode"]
            )
            return int(status), json.dumps({"error": error.get("Message", str(exc))}).encode()
        return 200, answer["Body"].read()

    return invoke


class TimedInvoke:
    """Wraps an invoke function and keeps each call's duration (for the latency check)."""

    def __init__(self, invoke: Invoke) -> None:
        self.invoke = invoke
        self.durations_ms: list[float] = []

    def __call__(self, content_type: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        start = time.perf_counter()
        try:
            return self.invoke(content_type, body, headers)
        finally:
            self.durations_ms.append((time.perf_counter() - start) * 1000)


def _image_bytes(fmt: str, size: int = 160) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _smoke_requests() -> list[tuple[str, bytes]]:
    jpeg = _image_bytes("JPEG")
    bodies = {
        "image/jpeg": jpeg,
        "image/png": _image_bytes("PNG"),
        "application/x-image": jpeg,
        "application/json": json.dumps({"image": base64.b64encode(jpeg).decode()}).encode(),
    }
    return [(content_type, bodies[content_type]) for content_type in CONTENT_TYPES]


def _detections_of(body: bytes) -> list[dict[str, Any]]:
    answer = json.loads(body)
    results = answer if isinstance(answer, list) else [answer]
    return [d for result in results for d in result["detections"]]


def smoke_check(invoke: Invoke, class_names: list[str]) -> CheckResult:
    headers = {ATTRIBUTES: f"conf={EVALUATION_CONF}"}
    for content_type, body in _smoke_requests():
        status, answer = invoke(content_type, body, headers)
        if status != 200:
            return CheckResult("smoke", False, f"{content_type} answered {status}: {answer[:200]!r}")
        try:
            served = {d["class_name"] for d in _detections_of(answer)}
        except (ValueError, KeyError, TypeError) as exc:
            return CheckResult("smoke", False, f"{content_type}: not a detections answer ({exc})")
        unknown = sorted(served - set(class_names))
        if unknown:
            return CheckResult(
                "smoke", False, f"{content_type}: classes {unknown} are not the dataset's {class_names}"
            )
    status, answer = invoke("image/jpeg", b"not an image", {})
    if not 400 <= status < 500:
        return CheckResult("smoke", False, f"a corrupt image/jpeg body answered {status}, not a 4xx")
    return CheckResult(
        "smoke", True, f"{len(CONTENT_TYPES)} content types answered; a bad request got {status}"
    )


def accuracy_check(
    invoke: Invoke, holdout_dir: Path, registered_map50_95: float, tolerance: float, limit: int
) -> CheckResult:
    """mAP50-95 of the endpoint on the holdout set's val split, against the registered figure."""
    from PIL import Image

    from yolo_core.evaluation.ground_truth import label_file_for, load_split, read_labels
    from yolo_core.evaluation.metrics import MetricsAccumulator
    from yolo_core.infer.detections import Detections

    split = load_split(holdout_dir, "val")
    accumulator = MetricsAccumulator(split.names)
    images = split.image_files[:limit]
    headers = {ATTRIBUTES: f"conf={EVALUATION_CONF}"}
    for image in images:
        content_type = _SUFFIX_TYPES.get(image.suffix.lower(), "application/x-image")
        status, body = invoke(content_type, image.read_bytes(), headers)
        if status != 200:
            return CheckResult("accuracy", False, f"{image.name} answered {status}: {body[:200]!r}")
        records = _detections_of(body)
        found = Detections(
            np.array([d["box"] for d in records], np.float32),
            np.array([d["score"] for d in records], np.float32),
            np.array([d["class_id"] for d in records], np.int64),
        )
        with Image.open(image) as opened:
            width, height = opened.size
        accumulator.add(found, read_labels(label_file_for(image), width, height, len(split.names)))
    measured = float(accumulator.finish()["map50_95"])
    figures = {"map50_95": measured, "registered_map50_95": registered_map50_95, "images": float(len(images))}
    failure = accuracy_failure(measured, registered_map50_95, tolerance)
    if failure:
        return CheckResult("accuracy", False, failure, figures)
    return CheckResult("accuracy", True, f"mAP50-95 {measured:.3f} on {len(images)} images", figures)


def latency_check(durations_ms: list[float]) -> CheckResult:
    p50, p99 = (float(np.percentile(durations_ms, q)) for q in (50, 99)) if durations_ms else (0.0, 0.0)
    return CheckResult(
        "latency", True, f"p50 {p50:.0f} ms, p99 {p99:.0f} ms over {len(durations_ms)} calls",
        {"p50_ms": p50, "p99_ms": p99, "calls": float(len(durations_ms))},
    )  # fmt: skip


def run_checks(
    version: str,
    invoke: Invoke,
    class_names: list[str],
    holdout_dir: Path,
    registered_map50_95: float,
    tolerance: float,
    limit: int,
) -> StagingReport:
    """The declared checks in order; the first failure stops the rest (latency is always recorded)."""
    timed = TimedInvoke(invoke)
    results = [smoke_check(timed, class_names)]
    if results[-1].passed:
        results.append(accuracy_check(timed, holdout_dir, registered_map50_95, tolerance, limit))
    results.append(latency_check(timed.durations_ms))
    return StagingReport(version, tuple(results))
