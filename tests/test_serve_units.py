"""The serving parts in-process: options, decoding limits, the micro-batcher, data capture.

The contract of the whole server (a real process on loopback) is in test_serve_contract.py.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from yolo_core.data.images_io import load_image
from yolo_core.infer.deadline import Deadline, DeadlineExceeded
from yolo_core.infer.slicing import tile_grid
from yolo_core.serving.batcher import MicroBatcher
from yolo_core.serving.budget import PixelBudget
from yolo_core.serving.capture import CapturedExchange, DataCapture
from yolo_core.serving.cost import check_cost, model_inputs
from yolo_core.serving.decode import DecodeLimits, decode_body, open_body
from yolo_core.serving.errors import RequestError
from yolo_core.serving.options import InferenceOptions, parse_default_options, parse_options


def encode(image: np.ndarray, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image[:, :, ::-1]).save(buffer, format=fmt)
    return buffer.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid grayscale PNG of zeros: a few KB that decode to width*height bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def rejected(content_type: str | None, body: bytes, limits: DecodeLimits | None = None) -> RequestError:
    with pytest.raises(RequestError) as caught:
        decode_body(content_type, body, limits or DecodeLimits())
    return caught.value


# --- options -------------------------------------------------------------------------------


def test_options_sources_and_precedence():
    defaults = parse_default_options("conf=0.1;slice_size=640")
    assert defaults == InferenceOptions(conf=0.1, slice_size=640)
    headers = {"x-amzn-sagemaker-custom-attributes": "conf=0.2, iou=0.4", "x-conf": "0.3"}
    options = parse_options(defaults, headers, {"max_det": 5, "full_frame": True})
    assert options == InferenceOptions(conf=0.3, iou=0.4, max_det=5, slice_size=640, full_frame=True)
    assert parse_options(defaults, {"x-conf": "0.3"}, {"conf": 0.5}).conf == 0.5  # body wins


@pytest.mark.parametrize(
    ("headers", "body", "named"),
    [
        ({"x-conf": "abc"}, None, "X-Conf header: conf='abc'"),
        ({"x-iou": "1.5"}, None, "X-Iou header: iou='1.5'"),
        ({}, {"max_det": 2.5}, "JSON body: max_det=2.5"),
        ({}, {"slice_size": 64}, "slice_size=64 must be 0 (no slicing) or >= 128"),
        (
            {"x-slice-overlap": "0.9"},
            None,
            "X-Slice-Overlap header: slice_overlap='0.9' is not a number from 0 to 0.5",
        ),
        ({}, {"full_frame": "maybe"}, "full_frame='maybe' is not true or false"),
        ({}, {"conf": True}, "conf=true is not a number"),
        ({}, {"conf": None}, "conf=null is not a number"),
        ({}, {"conf": [0.5]}, "conf=[...] is not a number"),
        ({}, {"max_det": 10**4000}, "JSON body: max_det="),  # too large for a float
        ({}, {"confidence": 0.3}, "unknown option(s) confidence"),
        ({"x-amzn-sagemaker-custom-attributes": "conf"}, None, "'conf' is not name=value"),
    ],
)
def test_invalid_options_name_the_field(headers, body, named):
    with pytest.raises(RequestError) as caught:
        parse_options(InferenceOptions(), headers, body)
    assert caught.value.status == 400
    assert named in caught.value.message


def test_echoed_client_values_are_cut_short():
    huge = "9" * 100_000
    for headers, body in [
        ({"x-conf": huge}, None),
        ({"x-amzn-sagemaker-custom-attributes": huge}, None),
        ({}, {"z" * 100_000: 1}),
        ({}, {"slice_size": huge}),
    ]:
        with pytest.raises(RequestError) as caught:
            parse_options(InferenceOptions(), headers, body)
        assert caught.value.status == 400
        assert len(caught.value.message) < 300 and "..." in caught.value.message


# --- cost ------------------------------------------------------------------------------------


def test_a_request_over_the_tile_cap_is_a_413_naming_the_cap_and_its_cost():
    options = InferenceOptions(slice_size=128, slice_overlap=0.5)
    with pytest.raises(RequestError) as caught:
        check_cost([(2000, 2000)], options, limit=512)
    assert caught.value.status == 413
    message = caught.value.message
    assert "961 model inputs" in message and "limit of 512" in message and "max_request_tiles" in message
    assert check_cost([(2000, 2000)], options, limit=961) == 961


@pytest.mark.parametrize("full_frame", [False, True])
@pytest.mark.parametrize(("width", "height"), [(100, 90), (640, 480), (3840, 2160), (7000, 300)])
def test_cost_counts_the_tiles_sliced_inference_will_cut(width: int, height: int, full_frame: bool):
    options = InferenceOptions(slice_size=256, slice_overlap=0.25, full_frame=full_frame)
    tiles = len(tile_grid(height, width, 256, 0.25))
    expected = tiles + (full_frame and tiles > 1)
    assert model_inputs([(width, height)] * 2, options) == 2 * expected
    assert model_inputs([(width, height)] * 2, InferenceOptions()) == 2  # no slicing: one per image


def test_image_sizes_are_known_from_headers_before_decoding():
    opened = open_body("image/png", png_bomb(3000, 2000), DecodeLimits())
    assert opened.sizes == [(3000, 2000)] and opened.pixels == 6_000_000


# --- the server-wide pixel budget --------------------------------------------------------------


def test_pixel_budget_makes_requests_wait_in_arrival_order_and_forgets_those_that_left():
    async def scenario():
        budget = PixelBudget(100)
        await budget.acquire(60)
        big = asyncio.ensure_future(budget.acquire(60))
        small = asyncio.ensure_future(budget.acquire(10))  # would fit, but arrived after `big`
        await until(lambda: budget.waiting == 2)
        assert not big.done() and not small.done() and budget.in_use == 60
        budget.release(60)
        await asyncio.gather(big, small)
        assert budget.in_use == 70
        gone = asyncio.ensure_future(budget.acquire(50))
        await until(lambda: budget.waiting == 1)
        gone.cancel()  # as a request past its time limit
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert budget.waiting == 0 and budget.in_use == 70
        async with budget.hold(30):
            assert budget.in_use == 100
        assert budget.in_use == 70
        with pytest.raises(ValueError, match="can never fit"):
            await budget.acquire(101)

    asyncio.run(scenario())


# --- decoding --------------------------------------------------------------------------------


def test_decodes_each_body_kind_to_bgr():
    image = np.zeros((30, 40, 3), np.uint8)
    image[..., 2] = 255  # red in BGR
    png = encode(image, "PNG")
    b64 = base64.b64encode(png).decode()
    for content_type, body, count in [
        ("image/png", png, 1),
        ("application/x-image", png, 1),
        ("application/json", json.dumps({"image": b64, "conf": 0.5}).encode(), 1),
        ("application/json", json.dumps({"images": [b64, "data:image/png;base64," + b64]}).encode(), 2),
        ("application/json; charset=utf-8", json.dumps([b64]).encode(), 1),
    ]:
        decoded = decode_body(content_type, body, DecodeLimits())
        assert len(decoded.images) == count
        assert decoded.images[0].shape == (30, 40, 3)
        assert decoded.images[0][0, 0].tolist() == [0, 0, 255]
    assert decode_body(
        "application/json", json.dumps({"image": b64, "conf": 0.5}).encode(), DecodeLimits()
    ).option_fields == {"conf": 0.5}


def test_grayscale_and_rgba_images_become_three_channel_bgr():
    for mode, color in (("L", 90), ("RGBA", (255, 0, 0, 128))):
        buffer = io.BytesIO()
        Image.new(mode, (8, 4), color).save(buffer, format="PNG")
        (decoded,) = decode_body("image/png", buffer.getvalue(), DecodeLimits()).images
        assert decoded.shape == (4, 8, 3) and decoded.dtype == np.uint8
        assert decoded[0, 0].tolist() == ([90, 90, 90] if mode == "L" else [0, 0, 255])


def test_bad_bodies_are_named_4xx():
    jpeg = encode(np.full((64, 64, 3), 128, np.uint8))
    assert rejected("text/csv", jpeg).status == 415
    assert rejected(None, jpeg).status == 415
    assert rejected("image/jpeg", b"").status == 400
    assert "not a readable image" in rejected("image/jpeg", b"not an image at all").message
    assert "truncated" in rejected("image/jpeg", jpeg[: len(jpeg) // 2]).message.lower()
    assert rejected("image/jpeg", jpeg, DecodeLimits(max_body_bytes=100)).status == 413
    assert "not valid base64" in rejected("application/json", b'{"image": "@@@"}').message
    assert "not valid JSON" in rejected("application/json", b'{"image": ').message
    assert "exactly one of" in rejected("application/json", b'{"conf": 0.5}').message
    too_many = json.dumps([base64.b64encode(jpeg).decode()] * 3).encode()
    assert rejected("application/json", too_many, DecodeLimits(max_images=2)).status == 413


def test_bad_json_is_a_400_naming_the_body():
    b64 = base64.b64encode(encode(np.zeros((8, 8, 3), np.uint8), "PNG")).decode()
    long_int = b'{"image": "' + b64.encode() + b'", "max_det": 1' + b"0" * 5000 + b"}"
    deep = b"[" * 1_000_000 + b"]" * 1_000_000
    for body in (long_int, deep, b'{"image": ' + deep + b"}"):
        error = rejected("application/json", body)
        assert error.status == 400 and error.message.startswith("JSON body")
        assert len(error.message) < 300


def test_error_messages_do_not_echo_internals_or_huge_values():
    error = rejected("image/png", b"\x89PNG not really")
    assert error.status == 400 and "BytesIO" not in error.message and " at 0x" not in error.message
    assert "not a recognised image format (JPEG, PNG" in error.message
    error = rejected("image/" + "x" * 100_000, b"data")
    assert error.status == 415 and len(error.message) < 400 and "..." in error.message


def gradient16(height: int = 4, width: int = 512) -> np.ndarray:
    """Every 128th 16-bit level, both ends included: a near-white decode would show at once."""
    row = np.linspace(0, 65535, width).round().astype(np.uint16)
    return np.repeat(row[None, :], height, axis=0)


def test_16bit_grayscale_png_decodes_as_preprocessing_does(tmp_path: Path):
    ok, png = cv2.imencode(".png", gradient16())
    assert ok
    path = tmp_path / "gray16.png"
    path.write_bytes(png.tobytes())
    assert Image.open(path).mode == "I;16"
    expected = load_image(path, "gray16.png").image
    (decoded,) = decode_body("image/png", png.tobytes(), DecodeLimits()).images
    assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
    assert np.abs(decoded.astype(int) - expected.astype(int)).max() <= 1


def tiff(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF")
    return buffer.getvalue()


def test_other_deep_modes_are_scaled_like_preprocessing():
    gray = gradient16()
    expected = (gray.astype(np.float32) / 257).round().astype(np.uint8)
    big_endian = Image.frombytes("I;16B", gray.shape[::-1], gray.astype(">u2").tobytes())
    rgb16 = cv2.imencode(".png", np.stack([gray] * 3, axis=-1))[1].tobytes()  # Pillow keeps 8 bits
    for content_type, body in [
        ("image/tiff", tiff(big_endian)),
        ("image/tiff", tiff(Image.fromarray(gray.astype(np.int32), "I"))),
        ("image/png", rgb16),
    ]:
        (decoded,) = decode_body(content_type, body, DecodeLimits()).images
        assert decoded.shape == (*gray.shape, 3) and decoded.dtype == np.uint8
        assert np.abs(decoded[..., 0].astype(int) - expected).max() <= 1


def test_float_tiff_still_decodes():
    values = np.linspace(0, 200, 64, dtype=np.float32).reshape(8, 8)
    (decoded,) = decode_body("image/tiff", tiff(Image.fromarray(values, "F")), DecodeLimits()).images
    assert decoded.shape == (8, 8, 3) and decoded.dtype == np.uint8
    assert decoded[0, 0].tolist() == [0, 0, 0] and decoded[-1, -1].tolist() == [200, 200, 200]


def test_decompression_bomb_is_refused_from_the_header():
    bomb = png_bomb(6000, 5000)  # 30 Mpx of zeros in a few KB
    assert len(bomb) < 100_000
    error = rejected("image/png", bomb, DecodeLimits(max_pixels=10_000_000))
    assert error.status == 413
    assert "6000x5000" in error.message and "decompression bomb" in error.message
    together = json.dumps({"images": [base64.b64encode(png_bomb(3000, 2000)).decode()] * 2}).encode()
    error = rejected(
        "application/json", together, DecodeLimits(max_pixels=10_000_000, max_request_pixels=10_000_000)
    )
    assert error.status == 413 and "per request" in error.message


# --- micro-batching --------------------------------------------------------------------------


def shapes_in_order(calls: list) -> callable:
    """A batch function that records its batches and answers each image with its height."""

    def run(images, key, deadline):
        calls.append((len(images), key))
        return [image.shape[0] for image in images]

    return run


def image(height: int) -> np.ndarray:
    return np.zeros((height, 1, 3), np.uint8)


RELEASE_TIMEOUT_S = 30  # only a broken test waits this long: the stand-ins are released by events


async def until(condition, timeout_s: float = RELEASE_TIMEOUT_S) -> None:
    """Yield to the event loop until `condition()` holds (a marker the code sets), or fail."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0)


def test_batcher_groups_concurrent_requests_by_options():
    calls: list = []

    async def scenario():
        batcher = MicroBatcher(
            shapes_in_order(calls), max_batch_size=4, max_wait_s=0.2, max_queued_images=100
        )
        batcher.start()
        results = await asyncio.gather(
            *(batcher.submit([image(h)], "a") for h in (1, 2, 3)),
            batcher.submit([image(9)], "b"),
            batcher.submit([image(4), image(5)], "a"),
        )
        await batcher.stop()
        return results, batcher.stats

    results, stats = asyncio.run(scenario())
    assert [r.outputs for r in results] == [[1], [2], [3], [9], [4, 5]]  # each gets its own answers
    assert calls[0] == (3, "a")  # 3 + 2 images would pass max_batch_size=4: the pair waits
    assert sorted(calls[1:]) == [(1, "b"), (2, "a")]
    assert results[0].batch_images == 3 and results[0].batch_requests == 3
    assert stats.requests == 5 and stats.batches == 3 and stats.largest_batch == 3


def test_batcher_off_runs_one_request_per_pass_and_survives_a_failure():
    calls: list = []

    def run(images, key, deadline):
        calls.append(len(images))
        if key == "boom":
            raise RuntimeError("model exploded")
        return [0] * len(images)

    async def scenario():
        batcher = MicroBatcher(run, max_batch_size=1, max_wait_s=0.0, max_queued_images=100)
        batcher.start()
        with pytest.raises(RuntimeError, match="exploded"):
            await batcher.submit([image(1)], "boom")
        results = await asyncio.gather(*(batcher.submit([image(1)], "ok") for _ in range(3)))
        await batcher.stop()
        return results

    results = asyncio.run(scenario())
    assert [r.batch_images for r in results] == [1, 1, 1]
    assert calls == [1, 1, 1, 1]


def test_batcher_skips_timed_out_requests_drains_on_stop_and_bounds_its_queue():
    calls: list = []
    entered, release = threading.Event(), threading.Event()

    def run(images, key, deadline):
        calls.append(key)
        entered.set()
        assert release.wait(RELEASE_TIMEOUT_S)
        return [0] * len(images)

    async def scenario():
        batcher = MicroBatcher(run, max_batch_size=1, max_wait_s=0.0, max_queued_images=2)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit([image(1)], "first"))
        assert await asyncio.to_thread(entered.wait, RELEASE_TIMEOUT_S)  # "first" is running, blocked
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(batcher.submit([image(1)], "abandoned"), 0.05)
        queued = asyncio.ensure_future(batcher.submit([image(1)], "queued"))
        await until(lambda: batcher.queued_images == 1)
        with pytest.raises(RequestError) as busy:
            await batcher.submit([image(1), image(1)], "too much")
        release.set()
        stopping = asyncio.ensure_future(batcher.stop())
        done = await asyncio.gather(first, queued)
        await stopping
        return busy.value, done

    busy, done = asyncio.run(scenario())
    assert busy.status == 503 and "busy" in busy.message
    assert [r.outputs for r in done] == [[0], [0]]
    assert calls == ["first", "queued"]  # the abandoned request never reached the model


def test_a_batch_is_abandoned_when_its_request_leaves_and_stops_at_the_deadline():
    entered, release = threading.Event(), threading.Event()
    seen: list[Deadline] = []

    def run(images, key, deadline):
        seen.append(deadline)
        entered.set()
        assert release.wait(RELEASE_TIMEOUT_S)
        deadline.check()  # between forward passes, as the model does
        return [0] * len(images)

    async def scenario():
        batcher = MicroBatcher(run, max_batch_size=1, max_wait_s=0.0, max_queued_images=8)
        batcher.start()
        far = Deadline.after(3600)  # the request leaves long before its limit
        waiting = asyncio.ensure_future(batcher.submit([image(1)], "a", far))
        assert await asyncio.to_thread(entered.wait, RELEASE_TIMEOUT_S)
        assert not seen[0].expired()
        waiting.cancel()  # what the request timeout does
        await until(seen[0].expired)  # nobody waits for the batch any more
        release.set()
        await until(lambda: batcher.stats.stopped_at_deadline == 1)
        assert batcher.running_for() == 0
        await batcher.stop()

    asyncio.run(scenario())


def test_a_deadline_exceeded_reaches_the_waiting_request():
    def run(images, key, deadline):
        deadline.check()
        return [0] * len(images)

    async def scenario():
        batcher = MicroBatcher(run, max_batch_size=1, max_wait_s=0.0, max_queued_images=8)
        batcher.start()
        with pytest.raises(DeadlineExceeded, match="did not finish within 0 s"):
            await batcher.submit([image(1)], "a", Deadline.after(0))
        assert (await batcher.submit([image(1)], "a")).outputs == [0]  # no deadline: runs
        await batcher.stop()
        return batcher.stats

    assert asyncio.run(scenario()).stopped_at_deadline == 1


# --- data capture ----------------------------------------------------------------------------


def test_capture_lines_have_sagemaker_fields(tmp_path: Path):
    capture = DataCapture(tmp_path)
    capture.submit(CapturedExchange("image/jpeg", b"\xff\xd8jpeg", "application/json", b'{"d":[]}', "id-1"))
    capture.submit(CapturedExchange("application/json", b'{"image":"x"}', "application/json", b"{}"))
    capture.close()
    files = list(tmp_path.rglob("*.jsonl"))
    assert len(files) == 1 and len(files[0].relative_to(tmp_path).parts) == 5  # YYYY/MM/DD/HH/file
    first, second = (json.loads(line) for line in files[0].read_text().splitlines())
    endpoint_input = first["captureData"]["endpointInput"]
    assert endpoint_input == {
        "observedContentType": "image/jpeg",
        "mode": "INPUT",
        "data": base64.b64encode(b"\xff\xd8jpeg").decode(),
        "encoding": "BASE64",
    }
    assert first["captureData"]["endpointOutput"]["encoding"] == "JSON"
    assert first["captureData"]["endpointOutput"]["data"] == '{"d":[]}'
    assert first["eventMetadata"]["inferenceId"] == "id-1"
    assert first["eventMetadata"]["inferenceTime"].endswith("Z") and first["eventVersion"] == "0"
    assert second["captureData"]["endpointInput"]["encoding"] == "JSON"
    assert first["eventMetadata"]["eventId"] != second["eventMetadata"]["eventId"]


def test_capture_sampling_zero_writes_nothing(tmp_path: Path):
    capture = DataCapture(tmp_path, sampling_percentage=0)
    capture.submit(CapturedExchange("image/jpeg", b"x", "application/json", b"{}"))
    capture.close()
    assert not list(tmp_path.rglob("*.jsonl"))


def test_capture_drops_and_counts_when_the_disk_cannot_keep_up(tmp_path: Path):
    exchange = CapturedExchange("image/jpeg", b"x" * 600, "application/json", b"{}")
    capture = DataCapture(tmp_path, max_queued_bytes=1000)
    with capture._lock:  # the writer is stuck on the disk: it holds the first exchange
        capture.submit(exchange)
        capture.submit(exchange)  # 2 x 602 bytes would pass 1000: dropped, not queued
        capture.submit(CapturedExchange("image/jpeg", b"x" * 2000, "application/json", b"{}"))
        assert capture.lines_dropped == 2
    capture.close()
    assert capture.lines_written == 1 and capture.lines_dropped == 2
    assert len(next(tmp_path.rglob("*.jsonl")).read_text().splitlines()) == 1


def test_unidentified_image_is_a_400_even_after_ultralytics_patched_pillow():
    import ultralytics.utils.patches  # noqa: F401 - replaces PIL.Image.open

    assert "not a readable image" in rejected("image/jpeg", b"\xff\xd8\xff garbage").message
