"""Turn an `/invocations` body into BGR images, refusing bad input before it costs memory.

Every image's size is read from its header (Pillow opens lazily) and checked against the pixel
limits BEFORE any pixel is decoded, so a small file that claims 30000x30000 pixels (a
decompression bomb) is refused for the cost of reading its header. Each failure is a
`RequestError` whose message names the image and the problem.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import sys
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from yolo_core.data.images_io import exif_orientation, is_truncated, to_8bit, upright
from yolo_core.serving.errors import RequestError, echo, shorten

JSON_TYPE = "application/json"
IMAGE_TYPES = (
    "image/jpeg",
    "image/jpg",
    "image/png",
    "image/webp",
    "image/bmp",
    "image/tiff",
    "application/x-image",
    "application/octet-stream",
)
ACCEPTED_TYPES = (*IMAGE_TYPES, JSON_TYPE)
# Formats Pillow may try: a short list keeps rarely used, rarely audited decoders out of reach.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")
_IMAGE_KEYS = ("image", "images")


@dataclass(frozen=True)
class DecodeLimits:
    max_body_bytes: int = 32 * 1024 * 1024
    max_images: int = 16
    max_pixels: int = 64_000_000  # one image: a 48 Mpx drone camera fits
    max_request_pixels: int = 256_000_000  # all images of one request together


@dataclass
class DecodedRequest:
    images: list[np.ndarray]  # BGR uint8, as OpenCV and the predictor expect
    option_fields: dict[str, object] = field(default_factory=dict)  # options found in a JSON body
    single: bool = True  # one image sent as such (not a list): answered as one result, not a list


def media_type(content_type: str | None) -> str:
    """`image/JPEG; charset=x` -> `image/jpeg`; missing -> ``."""
    return (content_type or "").split(";")[0].strip().lower()


def check_content_type(content_type: str | None) -> str:
    kind = media_type(content_type)
    if not kind:
        raise RequestError(415, f"Content-Type header is missing; use one of {', '.join(ACCEPTED_TYPES)}")
    if kind not in ACCEPTED_TYPES:
        raise RequestError(
            415, f"Content-Type {echo(kind)} is not supported; use one of {', '.join(ACCEPTED_TYPES)}"
        )
    return kind


@dataclass
class OpenedRequest:
    """Images whose headers are read and checked, pixels not yet decoded: what a request will
    cost (sizes, pixels) is known here, before it costs anything."""

    images: list[tuple[str, Image.Image]]  # (where in the request, lazily opened image)
    option_fields: dict[str, object] = field(default_factory=dict)
    single: bool = True
    blobs: list[bytes] = field(default_factory=list)  # each image's encoded bytes, in the same order

    @property
    def sizes(self) -> list[tuple[int, int]]:
        """(width, height) of each image, as stored (EXIF rotation swaps them, not their product)."""
        return [image.size for _, image in self.images]

    @property
    def pixels(self) -> int:
        return sum(width * height for width, height in self.sizes)


def decode_body(content_type: str | None, body: bytes, limits: DecodeLimits) -> DecodedRequest:
    return decode_opened(open_body(content_type, body, limits))


def decode_opened(opened: OpenedRequest) -> DecodedRequest:
    """Decode the pixels of images `open_body` accepted."""
    blobs = opened.blobs or [b""] * len(opened.images)
    images = [_to_bgr(image, where, data) for (where, image), data in zip(opened.images, blobs, strict=True)]
    return DecodedRequest(images, opened.option_fields, opened.single)


def open_body(content_type: str | None, body: bytes, limits: DecodeLimits) -> OpenedRequest:
    """Parse the body and read each image's header; every limit on sizes is checked here."""
    kind = check_content_type(content_type)
    if not body:
        raise RequestError(400, "request body is empty; send an image or a JSON document")
    if len(body) > limits.max_body_bytes:
        raise body_too_large_error(len(body), limits)
    if kind == JSON_TYPE:
        encoded, option_fields, single = _split_json(body, limits)
        blobs = [(where, _decode_base64(text, where)) for where, text in encoded]
    else:
        blobs, option_fields, single = [("image", body)], {}, True
    opened = [(where, _open_lazily(data, where)) for where, data in blobs]
    _check_pixels(opened, limits)
    return OpenedRequest(opened, option_fields, single, [data for _, data in blobs])


def body_too_large_error(size: int, limits: DecodeLimits) -> RequestError:
    """Also used by the app, which stops reading a body as soon as it passes the limit."""
    return RequestError(413, f"request body is over {limits.max_body_bytes} bytes (at least {size})")


def _split_json(body: bytes, limits: DecodeLimits) -> tuple[list[tuple[str, str]], dict[str, object], bool]:
    """`{"image": b64, ...options}`, `{"images": [b64, ...], ...options}` or `[b64, ...]`."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:  # ValueError covers JSONDecodeError, UnicodeDecodeError
        raise RequestError(400, _json_problem(exc)) from None
    single = False
    if isinstance(document, list):
        images, option_fields = document, {}
        names = [f"JSON body [{i}]" for i in range(len(images))]
    elif isinstance(document, dict):
        present = [key for key in _IMAGE_KEYS if key in document]
        if len(present) != 1:
            raise RequestError(400, 'JSON body needs exactly one of "image" (base64) or "images" (a list)')
        key = present[0]
        option_fields = {k: v for k, v in document.items() if k != key}
        single = key == "image"
        images = [document[key]] if single else document[key]
        if not isinstance(images, list):
            raise RequestError(400, 'JSON body: "images" must be a list of base64 strings')
        names = [f'JSON body "{key}"' + ("" if single else f"[{i}]") for i in range(len(images))]
    else:
        raise RequestError(400, "JSON body must be an object or a list of base64 strings")
    if not images:
        raise RequestError(400, "JSON body holds no image")
    if len(images) > limits.max_images:
        raise RequestError(
            413, f"JSON body holds {len(images)} images, over the limit of {limits.max_images} per request"
        )
    for where, text in zip(names, images, strict=True):
        if not isinstance(text, str):
            raise RequestError(400, f"{where}: expected a base64 string, got {type(text).__name__}")
    return list(zip(names, images, strict=True)), option_fields, single


def _json_problem(exc: ValueError | RecursionError) -> str:
    """Why `json.loads` refused a body, in the client's terms: no Python advice, nothing echoed."""
    if isinstance(exc, RecursionError):
        return "JSON body is nested too deeply to read"
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return f"JSON body is not valid JSON: {shorten(str(exc))}"
    # e.g. an integer of over 4300 digits; the part after ";" tells a Python programmer what to do
    return f"JSON body cannot be read: {shorten(str(exc).split(';')[0], 120)}"


def _decode_base64(text: str, where: str) -> bytes:
    if text.startswith("data:") and "," in text:  # a data URI, as browsers produce
        text = text.split(",", 1)[1]
    compact = "".join(text.split())
    alphabet = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        data = base64.b64decode(compact, altchars=alphabet, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(400, f"{where}: not valid base64 ({shorten(str(exc))})") from None
    if not data:
        raise RequestError(400, f"{where}: empty image")
    return data


def _pil_open():
    """Pillow's own `Image.open`. Ultralytics replaces it with one that, on an unidentified image,
    tries to install a HEIF plugin (the network, then ModuleNotFoundError): here that must be a 400."""
    patches = sys.modules.get("ultralytics.utils.patches")
    return getattr(patches, "_image_open", Image.open)


def _open_lazily(data: bytes, where: str) -> Image.Image:
    """Read the header only: format and size, no pixels yet."""
    formats = ", ".join(ALLOWED_FORMATS)
    try:
        return _pil_open()(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise RequestError(413, f"{where}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:  # its message shows Pillow's file object, meaningless to a client
        message = f"{where}: not a readable image: not a recognised image format ({formats})"
        raise RequestError(400, message) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise RequestError(400, f"{where}: not a readable image ({formats}): {shorten(str(exc))}") from None


def _check_pixels(opened: list[tuple[str, Image.Image]], limits: DecodeLimits) -> None:
    total = 0
    for where, image in opened:
        width, height = image.size
        if width < 1 or height < 1:
            raise RequestError(400, f"{where}: image has no pixels ({width}x{height})")
        pixels = width * height
        if pixels > limits.max_pixels:
            raise RequestError(
                413,
                f"{where}: image is {width}x{height} = {pixels / 1e6:.1f} Mpx, over the limit of "
                f"{limits.max_pixels / 1e6:.1f} Mpx per image (refused before decoding: "
                "decompression bomb guard)",
            )
        total += pixels
    if total > limits.max_request_pixels:
        raise RequestError(
            413,
            f"request images hold {total / 1e6:.1f} Mpx together, over the limit of "
            f"{limits.max_request_pixels / 1e6:.1f} Mpx per request",
        )


def _to_bgr(image: Image.Image, where: str, data: bytes = b"") -> np.ndarray:
    """Decode the pixels, EXIF orientation applied by preprocessing's rule (`images_io.upright`),
    so the model sees what it was trained on; read from the header, before loading, as there.

    A whole 8-bit JPEG (the common case) is decoded by OpenCV, as preprocessing decodes training
    images: straight into BGR, about 3x faster than Pillow's decode, copy and channel swap, which
    took ~40% of a loaded CPU server's time. Everything else, and anything OpenCV cannot read,
    goes through Pillow, whose errors name what is wrong."""
    try:
        orientation = exif_orientation(image)
        fast = _decode_jpeg(image, data)
        if fast is not None:
            return upright(fast, orientation)
        image.load()
        pixels = upright(_pixels(image), orientation)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise RequestError(400, f"{where}: corrupt or truncated image ({shorten(str(exc))})") from None
    code = cv2.COLOR_GRAY2BGR if pixels.ndim == 2 else cv2.COLOR_RGB2BGR
    return cv2.cvtColor(pixels, code)  # ~30x faster than numpy's reversed-channel copy


def _decode_jpeg(image: Image.Image, data: bytes) -> np.ndarray | None:
    """BGR pixels of a complete RGB or gray JPEG by OpenCV (orientation not applied), else None."""
    if not data or image.format != "JPEG" or image.mode not in ("RGB", "L") or is_truncated(data):
        return None
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if pixels is None or pixels.shape[:2] != (image.size[1], image.size[0]):
        return None  # Pillow decodes it, or says what is wrong with it
    return pixels


def _pixels(image: Image.Image) -> np.ndarray:
    """8-bit gray or RGB. Not `convert("RGB")` for 16-bit: it clips every level over 255 to white."""
    if image.mode == "I" or image.mode.startswith("I;16"):
        return _scale_16bit(np.asarray(image))
    if image.mode in ("L", "RGB"):
        return np.asarray(image)
    return np.asarray(image.convert("RGB"))


def _scale_16bit(levels: np.ndarray) -> np.ndarray:
    """Preprocessing's rule (`images_io._normalise`): x/257 rounded, the full 16-bit range onto 8 bits.

    32-bit mode "I" is clipped to the 16-bit range first (a 16-bit PNG may open as "I")."""
    return to_8bit(np.clip(levels, 0, 65535))
