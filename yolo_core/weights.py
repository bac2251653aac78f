"""Model weights are checked against model.json's SHA-256 before anything unpickles them.

A `.pt` checkpoint is a pickle: loading a tampered one can run code. Training records the digest
of `best.pt` in the card (`weights_sha256`); every reader verifies it first, then unpickles with
`torch.load(weights_only=True)` restricted to Ultralytics' model classes. The digest is the guard
that matters: an allow-list alone is not enough, since a pickle may call an allowed class, and
`DetectionModel(cfg)` evaluates strings of its config (see `load_checkpoint`). Cards without a
digest (from before it was recorded, or written by hand) load with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import struct
import warnings
from pathlib import Path
from typing import Any

from yolo_core.errors import UserInputError

LOG = logging.getLogger(__name__)
# How a damaged file, a refused class or a missing module surface from Ultralytics' loader and
# torch's weights-only unpickler (which, fed garbage, also fails on its memo, stack or struct reads).
_UNLOADABLE = (
    TypeError,
    RuntimeError,
    EOFError,
    ValueError,
    AssertionError,
    ImportError,
    LookupError,
    struct.error,
    pickle.UnpicklingError,
)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks (a yolo11x checkpoint is ~110 MB)."""
    with Path(path).open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def verify_weights(weights: Path, expected: str) -> str:
    """The file's digest, after checking it against `expected` (the card's `weights_sha256`).

    Raises a one-line `UserInputError` naming the file and both digests on a mismatch. An empty
    `expected` means the card records none: the file is accepted with a warning.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise UserInputError(f"{weights}: weights file not found")
    actual = sha256_of(weights)
    if not expected:
        LOG.warning(
            "%s: model.json records no weights_sha256, so the weights are loaded unverified "
            "(sha256 %s); retrain, or add the digest to the card, to have them checked",
            weights,
            actual,
        )
    elif actual != expected:
        raise UserInputError(
            f"{weights}: SHA-256 mismatch, model.json expects {expected} but the file has {actual}; "
            "the weights changed after training, refusing to load them"
        )
    return actual


def load_checkpoint(weights: Path) -> dict[str, Any]:
    """Unpickle an Ultralytics checkpoint with `torch.load(weights_only=True)`.

    Ultralytics' restricted loader allow-lists (with `torch.serialization.add_safe_globals`) only
    the `nn.Module` classes of `torch.nn.modules` and `ultralytics.nn` that the file references
    (a YOLO11 detection checkpoint: `DetectionModel`, `Detect`, `C3k2`, `C2PSA`, ... 21 in all),
    and, while it loads, builds models without `eval`: a plain `safe_globals([DetectionModel])`
    would let a crafted pickle call `DetectionModel({"activation": "<code>"})`, which runs it.
    """
    from ultralytics.nn.tasks import torch_safe_load

    try:
        with warnings.catch_warnings():  # garbage read as a pickle "protocol": the error below says it
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            checkpoint, _ = torch_safe_load(str(weights), safe_only=True)
    except _UNLOADABLE as exc:
        # Ultralytics' own message repeats the path and suggests downloading a model: not ours.
        raise UserInputError(
            f"{weights}: not a loadable Ultralytics checkpoint ({type(exc).__name__}: damaged, or it "
            "holds objects outside the allowed model classes)"
        ) from None
    if not isinstance(checkpoint, dict):
        raise UserInputError(f"{weights}: not an Ultralytics checkpoint (no dictionary inside)")
    return checkpoint
