"""Find the model folder (best.pt + model.json) in what a processing job was given.

SageMaker hands evaluation the training job's `model.tar.gz`, either as the file itself or as a
folder holding it; locally it may be the model folder. All three end as a folder path.
"""

from __future__ import annotations

from pathlib import Path

from yolo_core.archive import extract_tar
from yolo_core.errors import UserInputError
from yolo_core.model_card import MODEL_CARD_FILE

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(ARCHIVE_SUFFIXES)


def unpack_model_archive(archive: Path, target: Path) -> Path:
    """Extract with `yolo_core.archive`'s checks (size cap, no links, nothing outside `target`)."""
    return extract_tar(archive, target)


def _folder_with_card(root: Path, origin: Path) -> Path:
    """`root` itself, or the single sub-folder holding model.json (archives made of a folder)."""
    if (root / MODEL_CARD_FILE).is_file():
        return root
    candidates = sorted(p.parent for p in root.rglob(MODEL_CARD_FILE))
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UserInputError(f"{origin}: model.json is missing from the model artifact")
    raise UserInputError(f"{origin}: more than one model.json in the model artifact")


def resolve_model_dir(model: Path, scratch: Path) -> Path:
    """A folder with model.json from a model folder, a model.tar.gz, or a folder holding one."""
    model = Path(model)
    if _is_archive(model):
        return _folder_with_card(unpack_model_archive(model, scratch), model)
    if not model.is_dir():
        raise UserInputError(f"{model}: model artifact not found (expected a folder or model.tar.gz)")
    if (model / MODEL_CARD_FILE).is_file():
        return model
    archives = sorted(p for p in model.iterdir() if _is_archive(p))
    if len(archives) == 1:
        return _folder_with_card(unpack_model_archive(archives[0], scratch), archives[0])
    return _folder_with_card(model, model)
