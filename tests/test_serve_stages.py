"""The server's request stages as plain functions, without the web framework: read (images and
options), decode, infer (through the batcher, within a deadline), encode, capture; and the server
state's /ping and /metrics answers. The HTTP contract around them is in test_serve_contract.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading

import numpy as np
import pytest
from test_serve_units import RELEASE_TIMEOUT_S, encode, png_bomb, until

from yolo_core.infer.deadline import Deadline
from yolo_core.infer.detections import Detections
from yolo_core.serving.batcher import BatchResult
from yolo_core.serving.decode import DecodeLimits, decode_opened
from yolo_core.serving.errors import RequestError
from yolo_core.serving.options import InferenceOptions
from yolo_core.serving.stages import (
    captured_exchange,
    encode_response,
    holding_pixels,
    infer,
    read_request,
)
from yolo_core.serving.state import ServerSettings, ServerState

NAMES = {0: "car", 1: "person"}


class FramingPredictor:
    """A stand-in model: records each batch's image shapes and keyword arguments, and answers each
    image with one box around the whole image (class 1), so that a result shows which image it
    belongs to. `hold` makes a forward pass wait until the test releases it."""

    names = NAMES
    imgsz = 64
    batch_size = 4

    def __init__(self, hold: bool = False) -> None:
        self.batches: list[list[tuple[int, ...]]] = []
        self.kwargs: list[dict] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def predict(self, images, **kwargs):
        self.batches.append([image.shape for image in images])
        self.kwargs.append(kwargs)
        self.entered.set()
        assert self.release.wait(RELEASE_TIMEOUT_S), "the test never released the stand-in model"
        return [Detections([[0, 0, i.shape[1], i.shape[0]]], [0.9], [1]) for i in images]

    def source(self, image):
        return image

    def prepare(self, image):
        return image


def bgr(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), 100, np.uint8)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def settings(**changes) -> ServerSettings:
    return ServerSettings(warmup_batches=0, max_wait_ms=0, **changes)


async def started(state: ServerState) -> ServerState:
    state.start()
    await until(lambda: state.model.ready or state.model.error)
    return state


JPEG = encode(bgr(48, 64))
# two images of different sizes (20x30 and 10x40, height x width) and an option, as a JSON body
TWO_IMAGES = json.dumps(
    {"images": [b64(encode(bgr(20, 30), "PNG")), b64(encode(bgr(10, 40), "PNG"))], "max_det": 7}
).encode()


# --- read: body, content type and headers -> images (sizes only) and options ----------------------


def test_read_request_opens_the_images_and_gathers_the_options_from_every_source():
    headers = {"x-amzn-sagemaker-custom-attributes": "conf=0.2;iou=0.4", "x-conf": "0.3"}
    server = settings(default_options=InferenceOptions(conf=0.1, slice_size=640))
    invocation = read_request("application/json", TWO_IMAGES, headers, server)
    assert invocation.opened.sizes == [(30, 20), (40, 10)] and invocation.pixels == 30 * 20 + 40 * 10
    assert not invocation.opened.single
    assert invocation.options == InferenceOptions(conf=0.3, iou=0.4, max_det=7, slice_size=640)
    decoded = decode_opened(invocation.opened)
    assert [image.shape for image in decoded.images] == [(20, 30, 3), (10, 40, 3)]


def test_read_request_knows_a_bombs_size_without_decoding_it():
    invocation = read_request("image/png", png_bomb(3000, 2000), {}, settings())
    assert invocation.opened.sizes == [(3000, 2000)] and invocation.opened.single


@pytest.mark.parametrize(
    ("content_type", "body", "headers", "server", "status", "named"),
    [
        ("text/csv", b"a,b", {}, settings(), 415, "Content-Type 'text/csv' is not supported"),
        (None, JPEG, {}, settings(), 415, "Content-Type header is missing"),
        ("image/jpeg", b"", {}, settings(), 400, "request body is empty"),
        ("image/jpeg", b"not a jpeg", {}, settings(), 400, "image: not a readable image"),
        ("application/json", b'{"image": "@@"}', {}, settings(), 400, 'JSON body "image": not valid base64'),
        ("image/jpeg", JPEG, {"x-conf": "high"}, settings(), 400, "X-Conf header: conf='high'"),
        (
            "application/json",
            json.dumps({"image": b64(JPEG), "iou": 3}).encode(),
            {},
            settings(),
            400,
            "JSON body: iou=3 is not a number from 0 to 1",
        ),
        (
            "image/jpeg",
            JPEG,
            {"x-amzn-sagemaker-custom-attributes": "confidence=0.5"},
            settings(),
            400,
            "X-Amzn-SageMaker-Custom-Attributes header: unknown option(s) confidence",
        ),
        (
            "image/png",
            encode(bgr(256, 256), "PNG"),
            {"x-slice-size": "128", "x-slice-overlap": "0.5"},
            settings(max_request_tiles=3),
            413,
            "request needs 9 model inputs",
        ),
        (
            "application/json",
            json.dumps([b64(JPEG)] * 3).encode(),
            {},
            settings(limits=DecodeLimits(max_images=2)),
            413,
            "JSON body holds 3 images, over the limit of 2",
        ),
        # The body is read before the options: its fault is the one named.
        ("text/csv", JPEG, {"x-conf": "high"}, settings(), 415, "Content-Type 'text/csv'"),
    ],
)
def test_read_request_refuses_bad_input_naming_the_field(content_type, body, headers, server, status, named):
    with pytest.raises(RequestError) as caught:
        read_request(content_type, body, headers, server)
    assert caught.value.status == status
    assert named in caught.value.message


# --- encode: detections -> body, content type, headers -----------------------------------------


def box(x1: float, y1: float, x2: float, y2: float, class_id: int = 1) -> Detections:
    return Detections([[x1, y1, x2, y2]], [0.75], [class_id])


def test_encode_answers_one_image_as_its_result_in_compact_json_with_batch_headers():
    result = BatchResult([box(1, 2, 3, 4)], batch_images=3, batch_requests=2)
    encoded = encode_response([(20, 30, 3)], result, NAMES, single=True)
    assert encoded.content_type == "application/json"
    assert encoded.headers == {"X-Batch-Size": "3", "X-Batch-Requests": "2"}
    assert b" " not in encoded.body
    assert json.loads(encoded.body) == {
        "width": 30,
        "height": 20,
        "detections": [{"class_id": 1, "class_name": "person", "score": 0.75, "box": [1, 2, 3, 4]}],
    }


def test_encode_answers_a_list_of_images_as_predictions_in_order():
    result = BatchResult([box(0, 0, 5, 5, 0), Detections.empty()], batch_images=2, batch_requests=1)
    encoded = encode_response([(20, 30, 3), (7, 9, 3)], result, NAMES, single=False)
    first, second = json.loads(encoded.body)["predictions"]
    assert (first["width"], first["height"], first["detections"][0]["class_name"]) == (30, 20, "car")
    assert (second["width"], second["height"], second["detections"]) == (9, 7, [])


def test_encode_refuses_results_that_do_not_match_the_images():
    result = BatchResult([Detections.empty()], batch_images=1, batch_requests=1)
    with pytest.raises(ValueError):
        encode_response([(20, 30, 3), (7, 9, 3)], result, NAMES, single=False)


def test_captured_exchange_keeps_the_request_and_the_encoded_answer():
    encoded = encode_response([(2, 2, 3)], BatchResult([Detections.empty()], 1, 1), NAMES, single=True)
    exchange = captured_exchange("image/JPEG; charset=x", b"\xff\xd8", encoded, "id-7")
    assert (exchange.input_type, exchange.input_data) == ("image/jpeg", b"\xff\xd8")
    assert (exchange.output_type, exchange.output_data) == ("application/json", encoded.body)
    assert exchange.inference_id == "id-7"


# --- infer: the state's batcher and model, within the deadline -----------------------------------


def test_the_stages_in_a_row_reach_the_model_with_the_decoded_images_and_options():
    stand_in = FramingPredictor()
    server = settings()

    async def scenario():
        state = await started(ServerState.create(server, lambda: stand_in))
        invocation = read_request("application/json", TWO_IMAGES, {"x-conf": "0.4"}, server)
        async with holding_pixels(state, invocation.pixels, Deadline.after(30)):
            assert state.pixels.in_use == 30 * 20 + 40 * 10
            decoded = decode_opened(invocation.opened)
            result = await infer(state, decoded.images, invocation.options, Deadline.after(30))
        metrics = state.metrics()
        await state.stop()
        return decoded, result, metrics, state

    decoded, result, metrics, state = asyncio.run(scenario())
    assert stand_in.batches == [[(20, 30, 3), (10, 40, 3)]]  # one forward pass, the decoded images
    assert stand_in.kwargs[0]["conf"] == 0.4 and stand_in.kwargs[0]["max_det"] == 7
    assert (result.batch_images, result.batch_requests) == (2, 1)
    encoded = encode_response([i.shape for i in decoded.images], result, state.class_names, decoded.single)
    first, second = json.loads(encoded.body)["predictions"]
    assert first["detections"][0]["box"] == [0, 0, 30, 20] and second["detections"][0]["box"] == [
        0,
        0,
        40,
        10,
    ]
    assert first["detections"][0]["class_name"] == "person"
    assert metrics["requests"] == 1 and metrics["images"] == 2 and metrics["pixels_in_flight"] == 0
    assert metrics["model_ready"] and metrics["in_flight"] == 0 and metrics["captured"] == 0


def test_infer_past_the_deadline_is_a_503_naming_the_limit_and_ping_reports_a_stuck_worker():
    stand_in = FramingPredictor(hold=True)

    async def scenario():
        state = await started(ServerState.create(settings(stuck_after_s=0.0), lambda: stand_in))
        try:
            with pytest.raises(RequestError) as caught:
                await infer(state, [bgr(8, 8)], InferenceOptions(), Deadline.after(0.2))
            status, body = state.health()  # the abandoned pass is still in the model
        finally:
            stand_in.release.set()
        await state.stop()
        return caught.value, status, body, state.health()

    error, status, body, after = asyncio.run(scenario())
    assert error.status == 503 and "request did not finish within 0.2 s" in error.message
    assert status == 503 and body["status"] == 503 and "inference worker stuck" in body["error"]
    assert "stuck_after_s=0" in body["error"]
    assert after == (200, {"status": "ready"})


def test_the_pixel_budget_is_waited_for_within_the_deadline_and_given_back():
    limits = DecodeLimits(max_request_pixels=100)

    async def scenario():
        state = ServerState.create(settings(limits=limits, max_pixels_in_flight=100), FramingPredictor)
        async with holding_pixels(state, 100, Deadline.after(30)):
            with pytest.raises(RequestError) as caught:
                async with holding_pixels(state, 1, Deadline.after(0.05)):
                    pytest.fail("the budget is spent: the second request must not get pixels")
        return caught.value, state.pixels.in_use, state.pixels.waiting

    error, in_use, waiting = asyncio.run(scenario())
    assert error.status == 503 and "within 0.05 s" in error.message
    assert (in_use, waiting) == (0, 0)


def test_state_refuses_a_pixel_budget_no_request_could_fit():
    with pytest.raises(ValueError, match="max_pixels_in_flight"):
        ServerState.create(settings(max_pixels_in_flight=10), FramingPredictor)


def test_health_and_readiness_follow_the_model_loading():
    state = ServerState.create(settings(), FramingPredictor)
    assert state.health() == (503, {"status": "loading"})
    with pytest.raises(RequestError) as caught:
        state.require_ready()
    assert caught.value.status == 503 and "GET /ping" in caught.value.message

    def broken():
        raise ValueError("best.pt is not a model")

    failures: list[str] = []
    failed = ServerState.create(settings(), broken, failures.append)
    failed.model.start_loading().join(RELEASE_TIMEOUT_S)
    assert failed.health() == (500, {"error": "model failed to load: best.pt is not a model", "status": 500})
    assert failures == ["best.pt is not a model"]


def test_state_with_capture_counts_what_it_wrote(tmp_path):
    async def scenario():
        state = await started(ServerState.create(settings(capture_dir=tmp_path), FramingPredictor))
        state.require_ready()
        encoded = encode_response([(2, 2, 3)], BatchResult([Detections.empty()], 1, 1), NAMES, single=True)
        state.capture.submit(captured_exchange("image/jpeg", b"x", encoded, None))
        await state.stop()  # writes what capture holds
        return state.metrics()

    assert asyncio.run(scenario())["captured"] == 1
    assert len(list(tmp_path.rglob("*.jsonl"))) == 1
