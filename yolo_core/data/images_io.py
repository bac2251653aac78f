"""Reading a source image once: its bytes, content hash, checks and colour normalisation.

Rules (the report names the file for each):
- zero bytes, undecodable data, or a JPEG/PNG cut short (no end marker; OpenCV would decode
  it with a grey bottom and only warn) is an error: the image is quarantined;
- grayscale, RGBA and 16-bit images are converted to 8-bit BGR under `color_rule="convert"`
  (alpha dropped, 16-bit scaled by 1/257 over the full range) with a warning, or quarantined
  under `color_rule="reject"`;
- any other depth or channel count is an error;
- an EXIF orientation is applied to the pixels (`upright`), and the image is then re-encoded
  without the tag: source labels are taken in the frame a viewer shows (cv2.imread, browsers and
  labelling tools apply the tag), training sees upright pixels with nothing left to interpret,
  and the server applies the same function to what it decodes.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from yolo_core.data import quality
from yolo_core.errors import UserInputError

COLOR_RULES = ("convert", "reject")
_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_PNG_START, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND"
EXIF_ORIENTATION_TAG = 0x0112
_EXIF_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP")
_EXIF_SIGNATURES = (_JPEG_START, _PNG_START, b"II*\x00", b"MM\x00*")


@dataclass
class LoadedImage:
    """A decoded 8-bit BGR image, or None with the errors saying why."""

    file: str
    data: bytes
    digest: str
    image: np.ndarray | None = None
    converted: bool = False
    issues: list[quality.Issue] = field(default_factory=list)


def read_prepared_image(path: Path) -> np.ndarray:
    """A dataset's image as BGR pixels, for evaluation and monitoring references: preprocess has
    already made it upright 8-bit BGR, so only an unreadable file is an error (naming it)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserInputError(f"{path}: not a readable image")
    return image


def content_digest(data: bytes) -> str:
    """SHA-256 (hardware-accelerated on current CPUs: faster here than BLAKE2), 128 bits kept."""
    return hashlib.sha256(data).hexdigest()[:32]


def is_truncated(data: bytes) -> bool:
    """A JPEG or PNG that ends before its end marker (a cut upload or a partial copy)."""
    if data.startswith(_JPEG_START):
        return not data.rstrip(b"\x00\r\n ").endswith(_JPEG_END)
    if data.startswith(_PNG_START):
        return _PNG_END not in data[-16:]
    return False


def to_8bit(levels: np.ndarray) -> np.ndarray:
    """16-bit levels onto 8 bits over the full range (65535 -> 255), rounded: the one rule for
    training data and served requests alike."""
    return (levels.astype(np.float32) * (1 / 257)).round().astype(np.uint8)


def _may_carry_exif(data: bytes) -> bool:
    """By the signature, before Pillow sees it: Ultralytics patches `Image.open` to install a
    plugin when Pillow cannot identify a file, and cv2 reads formats Pillow does not."""
    return data.startswith(_EXIF_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def exif_orientation(source: bytes | Image.Image) -> int:
    """The EXIF orientation (1-8) of encoded bytes or an opened image; 1 when absent or unreadable.

    Reads the header only. A PNG's eXIf chunk counts only where it precedes the pixels (as the
    PNG spec asks): Pillow would decode the whole image to look for one after them."""
    if isinstance(source, bytes) and not _may_carry_exif(source):
        return 1
    try:
        image = Image.open(io.BytesIO(source), formats=_EXIF_FORMATS) if isinstance(source, bytes) else source
        if image.format == "PNG" and "exif" not in image.info:
            return 1
        value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block is ignored, as decoders and viewers do
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels as a viewer shows them under EXIF `orientation`: `ImageOps.exif_transpose`'s
    transform, on an array of any depth and channel count (Pillow has no 16-bit colour mode)."""
    if orientation in (5, 6, 7, 8):
        pixels = pixels.swapaxes(0, 1)  # transpose; 6 and 8 are it followed by a flip
    if orientation in (2, 3, 6, 7):
        pixels = pixels[:, ::-1]
    if orientation in (3, 4, 7, 8):
        pixels = pixels[::-1]
    return np.ascontiguousarray(pixels)


def _normalise(loaded: LoadedImage, image: np.ndarray, color_rule: str) -> np.ndarray | None:
    """8-bit BGR, or None after recording why the image cannot be used."""
    file = loaded.file
    found: list[tuple[str, str]] = []
    if image.dtype == np.uint16:
        found.append((quality.IMAGE_16BIT, "16-bit image"))
        image = to_8bit(image)
    elif image.dtype != np.uint8:
        loaded.issues.append(
            quality.error(file, quality.IMAGE_UNSUPPORTED, f"pixel type {image.dtype} unsupported")
        )
        return None
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        found.append((quality.IMAGE_GRAYSCALE, "grayscale image"))
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif channels == 4:
        found.append((quality.IMAGE_RGBA, "image with an alpha channel"))
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif channels != 3:
        loaded.issues.append(
            quality.error(file, quality.IMAGE_UNSUPPORTED, f"{channels} channels unsupported")
        )
        return None
    if found and color_rule == "reject":
        loaded.issues += [quality.error(file, kind, f"{what} (color_rule=reject)") for kind, what in found]
        return None
    loaded.issues += [
        quality.warning(file, kind, "converted", f"{what} converted to 8-bit BGR") for kind, what in found
    ]
    loaded.converted = bool(found)
    return image


def load_image(path: Path, file: str, color_rule: str = "convert") -> LoadedImage:
    """Read and decode `path` once; every failure becomes a finding, never an exception."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        loaded = LoadedImage(file, b"", "")
        loaded.issues.append(
            quality.error(file, quality.IMAGE_UNREADABLE, f"cannot read: {exc.strerror or exc}")
        )
        return loaded
    loaded = LoadedImage(file, data, content_digest(data))
    if not data:
        loaded.issues.append(quality.error(file, quality.IMAGE_ZERO_BYTES, "file is empty"))
    elif is_truncated(data):
        loaded.issues.append(
            quality.error(file, quality.IMAGE_TRUNCATED, "file ends before the image's end marker")
        )
    else:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None or image.size == 0:
            loaded.issues.append(quality.error(file, quality.IMAGE_UNREADABLE, "not a decodable image"))
        else:
            loaded.image = _normalise(loaded, image, color_rule)
            _apply_orientation(loaded)
    return loaded


def _apply_orientation(loaded: LoadedImage) -> None:
    """Upright pixels; marked converted, so that the dataset gets them re-encoded, tag-free."""
    orientation = exif_orientation(loaded.data)
    if loaded.image is not None and orientation != 1:
        loaded.image = upright(loaded.image, orientation)
        loaded.converted = True
