"""What a converter finds in a source folder: images, how to read their labels, class names.

Discovery runs in the main process and only lists files; reading and parsing happen in the
worker that decodes the image, because labels are checked against the image's real size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from yolo_core.data import quality
from yolo_core.data.labels import Labels

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

# (file name relative to the source, image width, image height) -> parsed labels
LabelParser = Callable[[int, int], Labels]


@dataclass(frozen=True)
class SourceItem:
    """One source image and the (picklable) function that parses its labels, if it has any."""

    rel: str
    image: Path
    parse_labels: LabelParser | None


@dataclass
class Discovery:
    """All items of a source folder, the class names, and findings that concern no single image."""

    items: list[SourceItem]
    names: dict[int, str]
    issues: list[quality.Issue] = field(default_factory=list)


def list_images(folder: Path) -> list[Path]:
    """Image files below `folder`, sorted, so every run sees them in the same order."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def read_label_text(path: Path, labels: Labels) -> str | None:
    """The label file's text, or None with an error recorded when it cannot be read as text."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        labels.error(quality.LABEL_UNREADABLE, f"label file cannot be read as UTF-8 text ({exc})")
        return None


def orphan_labels(label_files: list[Path], matched: set[Path], root: Path) -> list[quality.Issue]:
    """Label files no image claims: reported, since they often mean a renamed or lost image."""
    return [
        quality.warning(
            relative(path, root), quality.LABEL_WITHOUT_IMAGE, "ignored", "label file has no matching image"
        )
        for path in label_files
        if path not in matched
    ]
