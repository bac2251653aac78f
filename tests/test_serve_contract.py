"""The SageMaker inference contract, against the real `serve` process on a loopback port.

One server (module scope) answers the content-type, bad-request, options, batching and capture
tests; the start-up (/ping 503 then 200) and SIGTERM drain tests start their own. The model is
yolo11n built from its yaml with random weights: the contract does not need a trained model.
At `conf=0` a random model scores every anchor above zero, so `max_det` boxes come back: that
is how the options tests see that the options reached the model.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import netguard
import numpy as np
import pytest
import uvicorn
from PIL import Image
from test_serve_units import png_bomb

from tests.serve_support import serve_until_exit
from yolo_core.infer.detections import Detections
from yolo_core.model_card import ModelCard
from yolo_core.serving.app import ServerSettings, create_app
from yolo_core.serving.decode import DecodeLimits
from yolo_core.serving.listening import bound_port

ROOT = Path(__file__).resolve().parent.parent
CLASS_NAMES = ["car", "person"]
IMGSZ = 320
START_TIMEOUT_S = 120


def build_random_model(model_dir: Path) -> Path:
    """best.pt + model.json of an untrained yolo11n: fast to make, shaped like a trained one."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolo11n.yaml", nc=len(CLASS_NAMES), verbose=False)
    model.names = dict(enumerate(CLASS_NAMES))
    model_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model, "train_args": {"imgsz": IMGSZ}}, model_dir / "best.pt")
    ModelCard(class_names=CLASS_NAMES, imgsz=IMGSZ, model="yolo11n.yaml").save(model_dir)
    return model_dir


def jpeg(width: int = 320, height: int = 240, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def png(width: int = 200, height: int = 100) -> bytes:
    return png_of(np.full((height, width, 3), (30, 200, 10), np.uint8))


def png_of(bgr: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wait_until(condition, what: str, timeout_s: float = START_TIMEOUT_S):
    """Poll `condition()` (a marker the code under test sets) until it is truthy; return it."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not seen within {timeout_s} s"
        time.sleep(0.01)
    return value


class ServerProcess:
    """`python -m entrypoints.serve` on a loopback port the system picks (`--port 0`); the server
    writes the port it bound to `--port-file`, so no port is guessed before it is taken."""

    def __init__(self, model_dir: Path, env: dict[str, str], log_file: Path, *args: str) -> None:
        self.log_file = log_file
        self.port_file = log_file.with_name(log_file.stem + ".port")
        command = [sys.executable, "-m", "entrypoints.serve", "--model-dir", str(model_dir)]
        # One torch thread: the test client shares the two cores, and OpenMP threads that wait
        # for a busy core slow inference down several times.
        command += ["--host", "127.0.0.1", "--port", "0", "--port-file", str(self.port_file)]
        command += ["--threads", "1", *args]
        with open(log_file, "wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:

            def written() -> bool:
                if self.process.poll() is not None:
                    pytest.fail(f"server exited with {self.process.returncode}:\n{self.log()}")
                return self.port_file.exists()

            wait_until(written, "the server's port file")
            self._port = int(self.port_file.read_text())
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def ping_until_ready(self) -> list[int]:
        """Every /ping status seen until 200, from the moment the server listens."""
        statuses: list[int] = []
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.log()}")
            status = httpx.get(f"{self.url}/ping", timeout=2).status_code  # contract: /ping within 2 s
            statuses.append(status)
            if status == 200:
                return statuses
            time.sleep(0.02)
        pytest.fail(f"server not ready after {START_TIMEOUT_S} s:\n{self.log()}")

    def post(self, body: bytes | None, content_type: str | None = "image/jpeg", **kwargs) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if content_type:
            headers["Content-Type"] = content_type
        return httpx.post(f"{self.url}/invocations", content=body, headers=headers, timeout=60, **kwargs)

    def metrics(self) -> dict:
        return httpx.get(f"{self.url}/metrics", timeout=5).json()

    def terminate(self, timeout: float = 40) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def subprocess_env(report: Path) -> dict[str, str]:
    """As the `guarded_subprocess_env` fixture, for the module-scoped server."""
    env = netguard.guarded_env(report)
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(ROOT)])
    return env


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_random_model(tmp_path_factory.mktemp("serve-model"))


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("serve")
    report = folder / "netguard.txt"
    running = ServerProcess(
        model_dir,
        subprocess_env(report),
        folder / "server.log",
        *("--max-batch-size", "8", "--max-wait-ms", "50", "--max-images", "4"),
        *("--max-body-mb", "1", "--max-megapixels", "10", "--capture-dir", str(folder / "capture")),
    )
    running.capture_dir = folder / "capture"
    try:
        running.ping_until_ready()
        yield running
    finally:
        code = running.terminate()
    assert code == 0, running.log()
    assert "Traceback" not in running.log(), running.log()
    assert not report.exists() or not report.read_text(), report.read_text()


def assert_image_result(result: dict, width: int, height: int) -> None:
    assert (result["width"], result["height"]) == (width, height)
    for detection in result["detections"]:
        assert set(detection) == {"class_id", "class_name", "score", "box"}
        assert detection["class_name"] == CLASS_NAMES[detection["class_id"]]
        x1, y1, x2, y2 = detection["box"]
        assert -1 <= x1 <= x2 <= width + 1 and -1 <= y1 <= y2 <= height + 1


def test_each_content_type_answers_detections(server: ServerProcess):
    for content_type, body in [("image/jpeg", jpeg()), ("image/png", png()), ("application/x-image", jpeg())]:
        response = server.post(body, content_type)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        size = (320, 240) if body[:2] == b"\xff\xd8" else (200, 100)
        assert_image_result(response.json(), *size)

    one = server.post(json.dumps({"image": b64(jpeg())}).encode(), "application/json")
    assert one.status_code == 200, one.text
    assert_image_result(one.json(), 320, 240)

    for document in ({"images": [b64(jpeg()), b64(png())]}, [b64(jpeg()), b64(png())]):
        many = server.post(json.dumps(document).encode(), "application/json")
        assert many.status_code == 200, many.text
        first, second = many.json()["predictions"]
        assert_image_result(first, 320, 240)
        assert_image_result(second, 200, 100)


def test_extreme_aspect_ratios_are_answered(server: ServerProcess):
    """Valid strips that scale below one pixel across at the model's size (a 500 once)."""
    for width, height in ((20000, 20), (20, 20000)):
        response = server.post(png(width, height), "image/png")
        assert response.status_code == 200, response.text
        assert_image_result(response.json(), width, height)


def chunked(data: bytes):
    """A body without Content-Length: the server must count while it reads."""
    for start in range(0, len(data), 65536):
        yield data[start : start + 65536]


BAD_REQUESTS = {
    "wrong content type": (dict(body=b"a,b\n1,2", content_type="text/csv"), 415, "not supported"),
    "missing content type": (dict(body=jpeg(), content_type=None), 415, "missing"),
    "empty body": (dict(body=b""), 400, "empty"),
    "corrupt image": (dict(body=b"\xff\xd8 definitely not a jpeg"), 400, "not a readable image"),
    "truncated image": (dict(body=jpeg(640, 480)[:5000]), 400, "truncated"),
    "oversized body": (dict(body=os.urandom(1_500_000)), 413, "over 1048576 bytes"),
    "oversized chunked body": (dict(body=None, content=chunked(os.urandom(1_500_000))), 413, "over 1048576"),
    "decompression bomb": (
        dict(body=png_bomb(6000, 5000), content_type="image/png"),
        413,
        "decompression bomb",
    ),
    "bad base64": (dict(body=b'{"image": "not*base64!"}', content_type="application/json"), 400, "base64"),
    "bad JSON": (dict(body=b'{"image": "abc"', content_type="application/json"), 400, "not valid JSON"),
    "JSON without image": (dict(body=b'{"img": "abc"}', content_type="application/json"), 400, '"image"'),
    "too many images": (
        dict(body=json.dumps([b64(png())] * 5).encode(), content_type="application/json"),
        413,
        "over the limit of 4",
    ),
    "invalid option header": (dict(body=jpeg(), headers={"X-Conf": "high"}), 400, "X-Conf header"),
    "invalid option in JSON": (
        dict(body=json.dumps({"image": b64(jpeg()), "iou": 3}).encode(), content_type="application/json"),
        400,
        "iou=3",
    ),
    "unknown option": (
        dict(body=jpeg(), headers={"X-Amzn-SageMaker-Custom-Attributes": "confidence=0.5"}),
        400,
        "unknown option(s) confidence",
    ),
    "slicing over the cost cap": (  # 31 x 31 tiles of a 2000 px frame: refused before decoding
        dict(
            body=png(2000, 2000),
            content_type="image/png",
            headers={"X-Slice-Size": "128", "X-Slice-Overlap": "0.5"},
        ),
        413,
        "needs 961 model inputs (tiles of slice_size=128, slice_overlap=0.5 over 1 image(s)), over the limit "
        "of 512 per request (max_request_tiles)",
    ),
    "slices too small": (
        dict(body=jpeg(), headers={"X-Slice-Size": "64"}),
        400,
        "slice_size='64' must be 0 (no slicing) or >= 128",
    ),
    "slices overlapping too much": (
        dict(body=jpeg(), headers={"X-Slice-Size": "640", "X-Slice-Overlap": "0.9"}),
        400,
        "X-Slice-Overlap header: slice_overlap='0.9' is not a number from 0 to 0.5",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_a_named_4xx_and_the_server_keeps_serving(server: ServerProcess, case: str):
    request, status, phrase = BAD_REQUESTS[case]
    request = dict(request)
    content = request.pop("content", None)
    if content is not None:
        response = httpx.post(
            f"{server.url}/invocations", content=content, headers={"Content-Type": "image/jpeg"}, timeout=60
        )
    else:
        response = server.post(request.pop("body"), **request)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["status"] == status and phrase in error["error"], error
    after = server.post(jpeg(), "image/jpeg")
    assert after.status_code == 200, after.text
    assert httpx.get(f"{server.url}/ping", timeout=2).status_code == 200


def test_unknown_routes_and_methods_answer_json_and_are_counted(server: ServerProcess):
    before = server.metrics()["errors"]
    wrong_method = httpx.get(f"{server.url}/invocations", timeout=5)
    assert wrong_method.json()["status"] == 405 and wrong_method.headers["allow"] == "POST"
    assert httpx.get(f"{server.url}/nowhere", timeout=5).json()["status"] == 404
    after = server.metrics()["errors"]
    for status in ("404", "405"):
        assert after[status] == before.get(status, 0) + 1, (before, after)


def test_options_reach_the_model(server: ServerProcess):
    by_header = server.post(jpeg(), headers={"X-Conf": "0", "X-Max-Det": "3"})
    assert len(by_header.json()["detections"]) == 3, by_header.text
    by_attributes = server.post(jpeg(), headers={"X-Amzn-SageMaker-Custom-Attributes": "conf=0;max_det=2"})
    assert len(by_attributes.json()["detections"]) == 2, by_attributes.text
    by_body = server.post(
        json.dumps({"image": b64(jpeg()), "conf": 0, "max_det": 4, "iou": 0.5}).encode(), "application/json"
    )
    assert len(by_body.json()["detections"]) == 4, by_body.text
    sliced = server.post(jpeg(), headers={"X-Conf": "0", "X-Max-Det": "2", "X-Slice-Size": "128"})
    assert sliced.status_code == 200, sliced.text
    assert len(sliced.json()["detections"]) == 2  # the cap holds for the merged frame, not per tile
    assert_image_result(sliced.json(), 320, 240)
    default = server.post(jpeg())
    assert len(default.json()["detections"]) < 3  # conf 0.25: a random model finds (almost) nothing


def test_metrics_show_the_engine_and_how_it_was_chosen(server: ServerProcess):
    """The server runs with `--backend auto`: it measured the engines this host runs at load and
    says which it kept, with every timing and agreement figure."""
    engine = server.metrics()["engine"]
    assert engine["source"] in {"measured", "cache"}
    chosen = (engine["engine"]["backend"], engine["engine"]["precision"])
    timed = {(m["backend"], m["precision"]): m for m in engine["measurements"]}
    assert ("torch", "fp32") in timed and chosen in timed
    usable = [m for m in timed.values() if m["images_per_s"] > 0]
    assert timed[chosen]["images_per_s"] == max(
        m["images_per_s"]
        for m in usable
        if m["agreement"] is None
        or min(m["agreement"]["candidate_in_reference"], m["agreement"]["reference_in_candidate"]) >= 0.98
    )
    assert "inference engine:" in server.log()


def test_concurrent_requests_share_forward_passes(server: ServerProcess):
    before = server.metrics()
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda seed: server.post(jpeg(seed=seed)), range(16)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    batch_sizes = [int(r.headers["X-Batch-Size"]) for r in responses]
    after = server.metrics()
    requests = after["requests"] - before["requests"]
    batches = after["batches"] - before["batches"]
    assert requests == 16
    assert max(batch_sizes) > 1 and batches < requests, (batch_sizes, after)
    assert after["largest_batch"] <= 8  # max batch size


def test_data_capture_lines_are_written(server: ServerProcess):
    inference_id = uuid.uuid4().hex
    body = jpeg(seed=7)
    response = server.post(body, headers={"X-Amzn-SageMaker-Inference-Id": inference_id})
    assert response.status_code == 200
    deadline = time.monotonic() + 10
    record = None
    while record is None and time.monotonic() < deadline:
        for path in server.capture_dir.rglob("*.jsonl"):
            for line in path.read_text().splitlines():
                if inference_id in line:
                    record = json.loads(line)
        time.sleep(0.05)
    assert record is not None, "no capture line for the request"
    data = record["captureData"]
    assert data["endpointInput"]["observedContentType"] == "image/jpeg"
    assert data["endpointInput"]["mode"] == "INPUT" and data["endpointInput"]["encoding"] == "BASE64"
    assert base64.b64decode(data["endpointInput"]["data"]) == body
    assert data["endpointOutput"]["mode"] == "OUTPUT" and data["endpointOutput"]["encoding"] == "JSON"
    assert json.loads(data["endpointOutput"]["data"]) == response.json()
    assert record["eventMetadata"]["inferenceId"] == inference_id
    assert {"eventId", "inferenceTime"} <= set(record["eventMetadata"]) and record["eventVersion"] == "0"


def test_ping_is_503_while_loading_and_sigterm_drains_in_flight_requests(
    model_dir: Path, guarded_subprocess_env: dict[str, str], tmp_path: Path
):
    # Warm-up batches make loading take long enough to be seen from outside.
    args = ("--warmup-batches", "2", "--max-batch-size", "4")
    server = ServerProcess(model_dir, guarded_subprocess_env, tmp_path / "server.log", *args)
    try:
        statuses = server.ping_until_ready()
        assert statuses[0] == 503 and statuses[-1] == 200, statuses
        # In flight for as long as the test wants: the body arrives in two parts, SIGTERM between.
        body = jpeg(640, 480)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        connection.putrequest("POST", "/invocations")
        for name, value in (
            ("Content-Type", "image/jpeg"),
            ("Content-Length", len(body)),
            ("X-Slice-Size", 160),
        ):
            connection.putheader(name, str(value))
        connection.endheaders(body[:1000])
        wait_until(lambda: server.metrics()["in_flight"] == 1, "the request in flight")
        server.process.send_signal(signal.SIGTERM)
        connection.send(body[1000:])
        response = connection.getresponse()
        answer = response.read()
        assert response.status == 200, answer
        assert_image_result(json.loads(answer), 640, 480)
        assert server.process.wait(40) == 0, server.log()
        assert "Traceback" not in server.log()
    finally:
        if server.process.poll() is None:
            server.process.kill()


def test_missing_model_exits_1_with_the_reason(guarded_subprocess_env: dict[str, str], tmp_path: Path):
    empty = tmp_path / "model"
    empty.mkdir()
    result = serve_until_exit(empty, guarded_subprocess_env)
    assert result.returncode == 1
    assert "model.json is missing" in result.stderr and "Traceback" not in result.stderr


# --- in-process: the request time limit, and real detections from a trained model -----------


@contextmanager
def served_in_thread(app) -> Iterator[str]:
    """The app under uvicorn in this process (a thread), on a loopback port the system picks, once
    /ping is 200."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), "uvicorn started")
        assert thread.is_alive(), "uvicorn stopped at start-up"
        url = f"http://127.0.0.1:{bound_port(server)}"
        wait_until(lambda: httpx.get(f"{url}/ping", timeout=2).status_code == 200, "model ready")
        yield url
    finally:
        server.should_exit = True  # drains, as on SIGTERM
        thread.join(60)


def loader(model_dir: Path):
    from yolo_core.infer.predictor import Predictor

    return lambda: Predictor.from_model_dir(model_dir, batch_size=4)


class BlockingPredictor:
    """A stand-in model whose forward pass (one image or tile each) waits until the test releases
    it: "slow" is a fact of the test, not of the machine's speed. It counts its passes."""

    names = {0: "car"}
    imgsz = 64
    batch_size = 1

    def __init__(self, released: bool = False) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        if released:
            self.release.set()
        self.passes = 0

    def predict(self, images, deadline=None, **kwargs):
        """One pass per image, the deadline checked before each, as the real predictor does
        between its batches (sliced inference hands it all of a request's tiles at once)."""
        for _ in images:
            if deadline is not None:
                deadline.check()
            self.passes += 1
            self.entered.set()
            assert self.release.wait(START_TIMEOUT_S), "the test never released the stand-in model"
        return [Detections.empty() for _ in images]

    def source(self, image):
        return image

    def prepare(self, image):
        return image


def test_a_request_over_its_time_limit_gets_503_and_the_server_goes_on():
    stand_in = BlockingPredictor()
    app = create_app(ServerSettings(request_timeout_s=0.2, warmup_batches=0), lambda: stand_in)
    with served_in_thread(app) as url:
        try:
            slow = httpx.post(
                f"{url}/invocations", content=jpeg(64, 48), headers={"Content-Type": "image/jpeg"}, timeout=60
            )
            assert stand_in.entered.is_set()
            assert slow.status_code == 503, slow.text
            assert "did not finish within 0.2 s" in slow.json()["error"]
            assert httpx.get(f"{url}/ping", timeout=2).status_code == 200
        finally:
            stand_in.release.set()
        # The server goes on: the abandoned pass ends and nothing is left in flight (a 200 for a
        # later request is the next test's, with a limit no busy machine comes near).
        wait_until(lambda: metrics_of(url)["worker_busy_s"] == 0, "the abandoned pass to end")
        assert httpx.get(f"{url}/ping", timeout=10).status_code == 200


def post_jpeg(url: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/invocations", content=body, headers={"Content-Type": "image/jpeg", **headers}, timeout=120
    )


def metrics_of(url: str) -> dict:
    return httpx.get(f"{url}/metrics", timeout=10).json()


def in_background(work) -> tuple[threading.Thread, dict]:
    """Run `work()` in a thread; its result lands in the dict under "result"."""
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(result=work()), daemon=True)
    thread.start()
    return thread, outcome


def test_an_expensive_request_past_its_deadline_stops_between_passes_and_the_server_goes_on():
    stand_in = BlockingPredictor()
    # The limit only has to outlast the normal request's queueing and one stand-in pass: 30 s is
    # far beyond that on any machine; the expensive request is held past it by the stand-in.
    app = create_app(ServerSettings(request_timeout_s=30, warmup_batches=0), lambda: stand_in)
    with served_in_thread(app) as url:
        try:
            # 16 tiles of 128 px, one per pass; the first pass is held until the test releases it.
            expensive = post_jpeg(url, jpeg(512, 512), **{"X-Slice-Size": "128", "X-Slice-Overlap": "0"})
            assert expensive.status_code == 503, expensive.text
            assert "did not finish within 30 s" in expensive.json()["error"]
            thread, normal = in_background(lambda: post_jpeg(url, jpeg(64, 48)))
            wait_until(lambda: metrics_of(url)["queued_images"] == 1, "the normal request queued")
        finally:
            stand_in.release.set()
        thread.join(START_TIMEOUT_S)
        assert normal["result"].status_code == 200, normal["result"].text
        assert stand_in.passes == 2  # one of the expensive request's 16, then the normal request's
        assert metrics_of(url)["stopped_at_deadline"] == 1


def test_ping_turns_unhealthy_while_the_worker_is_stuck_and_recovers():
    stand_in = BlockingPredictor()
    app = create_app(ServerSettings(stuck_after_s=0.2, warmup_batches=0), lambda: stand_in)
    with served_in_thread(app) as url:
        thread, stuck = in_background(lambda: post_jpeg(url, jpeg(64, 48)))
        try:
            assert stand_in.entered.wait(START_TIMEOUT_S)
            ping = wait_until(
                lambda: (r := httpx.get(f"{url}/ping", timeout=2)).status_code != 200 and r,
                "an unhealthy /ping",
            )
            assert ping.status_code == 503 and "inference worker stuck" in ping.json()["error"], ping.text
            assert "stuck_after_s=0.2" in ping.json()["error"]
        finally:
            stand_in.release.set()  # what a replaced instance never gets; here, the teardown
        thread.join(START_TIMEOUT_S)
        assert stuck["result"].status_code == 200, stuck["result"].text
        wait_until(lambda: httpx.get(f"{url}/ping", timeout=2).status_code == 200, "a healthy /ping again")


def test_a_client_that_stalls_its_body_gets_408_and_the_server_goes_on():
    app = create_app(
        ServerSettings(body_timeout_s=0.2, warmup_batches=0), lambda: BlockingPredictor(released=True)
    )
    with served_in_thread(app) as url:
        connection = http.client.HTTPConnection("127.0.0.1", httpx.URL(url).port, timeout=60)
        connection.putrequest("POST", "/invocations")
        connection.putheader("Content-Type", "image/jpeg")
        connection.putheader("Content-Length", "100000")
        connection.endheaders(b"\xff\xd8" * 50)  # and then nothing more
        response = connection.getresponse()
        error = json.loads(response.read())
        connection.close()
        assert response.status == 408 and "request body not received within 0.2 s" in error["error"], error
        after = post_jpeg(url, jpeg(64, 48))
        assert after.status_code == 200, after.text
        assert metrics_of(url)["errors"] == {"408": 1}


def test_decoding_waits_for_the_servers_pixel_budget():
    stand_in = BlockingPredictor()
    frame = 64 * 48  # pixels of one request: the budget holds exactly one
    limits = DecodeLimits(max_request_pixels=frame)
    app = create_app(
        ServerSettings(limits=limits, max_pixels_in_flight=frame, warmup_batches=0), lambda: stand_in
    )
    with served_in_thread(app) as url:
        requests = [in_background(lambda seed=seed: post_jpeg(url, jpeg(64, 48, seed))) for seed in range(2)]
        try:
            assert stand_in.entered.wait(START_TIMEOUT_S)
            waiting = wait_until(
                lambda: (m := metrics_of(url))["requests_waiting_for_pixels"] == 1 and m, "a request waiting"
            )
            assert waiting["pixels_in_flight"] == frame and waiting["queued_images"] == 0  # not decoded yet
        finally:
            stand_in.release.set()
        for thread, outcome in requests:
            thread.join(START_TIMEOUT_S)
            assert outcome["result"].status_code == 200, outcome["result"].text
            assert outcome["result"].headers["X-Batch-Requests"] == "1"  # never decoded together
        assert metrics_of(url)["pixels_in_flight"] == 0


def box_iou(a: list[float], b: list[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def labelled_boxes(label_file: Path, width: int, height: int, names: list[str]) -> list[tuple[str, list]]:
    boxes = []
    for line in label_file.read_text().splitlines():
        class_id, cx, cy, w, h = (float(v) for v in line.split())
        box = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
        boxes.append((names[int(class_id)], box))
    return boxes


@pytest.mark.slow
def test_trained_model_answers_its_predictors_detections_in_source_pixels(
    trained_model_dir: Path, synthetic_dataset: Path
):
    """All val frames in one JSON request: the answer is the predictor's own, and it finds objects."""
    from yolo_core.infer.predictor import Predictor

    names = ModelCard.load(trained_model_dir).class_names
    image_files = sorted((synthetic_dataset / "images" / "val").glob("*.jpg"))[:16]
    frames = [np.ascontiguousarray(np.asarray(Image.open(f).convert("RGB"))[:, :, ::-1]) for f in image_files]
    predictor = Predictor.from_model_dir(trained_model_dir, batch_size=4)
    expected = [d.to_records(predictor.names) for d in predictor.predict(frames, conf=0.1)]
    document = {"images": [b64(png_of(frame)) for frame in frames], "conf": 0.1}  # PNG: the same pixels

    with served_in_thread(create_app(ServerSettings(), loader(trained_model_dir))) as url:
        response = httpx.post(f"{url}/invocations", json=document, timeout=120)
    predictions = response.json()["predictions"]
    assert [p["detections"] for p in predictions] == expected and any(expected), response.text
    matched = 0
    for image_file, frame, prediction in zip(image_files, frames, predictions, strict=True):
        assert (prediction["width"], prediction["height"]) == (frame.shape[1], frame.shape[0])
        label_file = synthetic_dataset / "labels" / "val" / f"{image_file.stem}.txt"
        for name, box in labelled_boxes(label_file, frame.shape[1], frame.shape[0], names):
            matched += any(
                d["class_name"] == name and box_iou(d["box"], box) >= 0.5 for d in prediction["detections"]
            )
    assert matched >= 1, predictions  # boxes land on labelled objects, in source pixels
