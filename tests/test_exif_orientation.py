"""EXIF orientation: preprocessing (and so training) and the server see the same upright pixels."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from data_support import label_lines, write_text
from PIL import Image, ImageOps

from yolo_core.data import build_dataset
from yolo_core.data.images_io import EXIF_ORIENTATION_TAG, exif_orientation, load_image, upright
from yolo_core.serving.decode import DecodeLimits, decode_body

STORED_WIDTH, STORED_HEIGHT = 64, 40


def _stored_pixels() -> np.ndarray:
    """RGB, as stored: dark, with a bright block in the top-left corner and a mid-grey bottom row."""
    pixels = np.full((STORED_HEIGHT, STORED_WIDTH, 3), 30, np.uint8)
    pixels[:16, :16] = (250, 240, 230)
    pixels[-8:] = 128
    return pixels


def _encoded(pixels: np.ndarray, orientation: int, fmt: str = "JPEG") -> bytes:
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    buffer = io.BytesIO()
    image.save(buffer, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_is_pillows_exif_transpose(orientation):
    pixels = np.random.default_rng(orientation).integers(0, 255, (5, 7, 3), np.uint8)
    data = _encoded(pixels, orientation, "PNG")
    assert exif_orientation(data) == orientation
    with Image.open(io.BytesIO(data)) as image:
        expected = np.asarray(ImageOps.exif_transpose(image))
        assert np.array_equal(upright(np.asarray(image), orientation), expected)


def test_a_rotated_jpeg_is_upright_through_preprocessing_and_the_server(tmp_path):
    data = _encoded(_stored_pixels(), orientation=6)  # "rotate 90 degrees clockwise to view"
    path = tmp_path / "rotated.jpg"
    path.write_bytes(data)

    loaded = load_image(path, "rotated.jpg")
    served = decode_body("image/jpeg", data, DecodeLimits()).images[0]

    assert loaded.image.shape == served.shape == (STORED_WIDTH, STORED_HEIGHT, 3)  # width and height swap
    assert loaded.converted  # so the dataset gets the pixels re-encoded, without the tag
    assert np.abs(loaded.image.astype(int) - served.astype(int)).max() <= 2  # two JPEG decoders
    for pixels in (loaded.image, served):
        assert pixels[:16, -16:].mean() > 200  # the stored top-left corner, now top-right
        assert pixels[:, :8].mean() == pytest.approx(128, abs=4)  # the stored bottom row, now left


def test_the_dataset_holds_the_upright_image_without_the_tag(tmp_path):
    source = tmp_path / "yolo"
    write_text(source / "data.yaml", "names: [block]\n")
    (source / "images" / "train").mkdir(parents=True)
    data = _encoded(_stored_pixels(), orientation=6)
    (source / "images" / "train" / "x.jpg").write_bytes(data)
    # The block as a viewer shows it: top-right, 16 px of the upright 40 x 64 image.
    write_text(source / "labels" / "train" / "x.txt", "0 0.8 0.125 0.4 0.25\n")
    out = tmp_path / "dataset"
    build_dataset(source, out, "yolo", val_fraction=0.0, progress=False)

    written = out / "images" / "train" / "train__x.jpg"
    assert exif_orientation(Path(written).read_bytes()) == 1
    trained_on = cv2.imread(str(written), cv2.IMREAD_COLOR)  # as Ultralytics' dataloader reads it
    served = decode_body("image/jpeg", data, DecodeLimits()).images[0]
    assert trained_on.shape == served.shape == (STORED_WIDTH, STORED_HEIGHT, 3)
    assert np.abs(trained_on.astype(float) - served).mean() < 2  # re-encoded at quality 95
    assert label_lines(out, "train", "train__x") == ["0 0.800000 0.125000 0.400000 0.250000"]


def test_missing_or_broken_exif_means_as_stored():
    assert exif_orientation(b"BM" + bytes(60)) == 1  # a format without EXIF: Pillow is not asked
    assert exif_orientation(b"\xff\xd8\xff\xe1\x00\x08Exif\x00\x00garbage") == 1
    assert exif_orientation(_encoded(_stored_pixels(), orientation=9)) == 1  # out of range
