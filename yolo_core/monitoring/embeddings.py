"""Per-image embeddings from the served detector's own backbone: what the embedding drift check compares.

Why the model's backbone: a shift that matters is one the model sees. Hand-picked statistics
(brightness, sharpness, contrast) name what moved; the backbone's pooled features catch shifts
those statistics miss, in the features the detector actually reads. The vector is the global
average pool of the backbone's last layer (for yolo11 the C2PSA block, the last layer before the
neck), found from the model's own yaml rather than a fixed index, so other sizes and families work.

Loading and letterboxing are the predictor's (`Predictor.from_model_dir`), pinned to the CPU,
fp32 and the torch backend: an embedding must not depend on the host's bf16 units or a GPU, so
that a reference computed at training time and a window computed by the monitor agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from yolo_core.errors import UserInputError
from yolo_core.infer.letterbox import check_image, letterbox_batch
from yolo_core.infer.predictor import Predictor


class BackboneEmbedder:
    """BGR uint8 images in, one float32 vector per image out, deterministic on a CPU."""

    def __init__(self, predictor: Predictor):
        if predictor.backend != "torch" or predictor.device.type != "cpu" or predictor.precision != "fp32":
            raise ValueError("BackboneEmbedder needs a torch predictor on the CPU in fp32")
        self.predictor = predictor
        self.layer = backbone_output_layer(predictor.engine.model)

    @classmethod
    def from_model_dir(
        cls, model_dir: Path, imgsz: int | None = None, batch_size: int = 16
    ) -> BackboneEmbedder:
        """The model of a model folder (`best.pt` + `model.json`, digest checked); `imgsz` defaults
        to the card's, so that served frames are embedded at the size the model was trained at."""
        options = {"imgsz": imgsz} if imgsz is not None else {}
        predictor = Predictor.from_model_dir(
            Path(model_dir),
            device="cpu",
            precision="fp32",
            backend="torch",
            letterbox="host",
            batch_size=batch_size,
            **options,
        )
        return cls(predictor)

    @property
    def dimensions(self) -> int:
        """The embedding's length: the channels of the backbone's last layer."""
        return int(self.embed([np.zeros((32, 32, 3), np.uint8)]).shape[1])

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, d) float32, in the order given; (0, 0) for no images.

        Images are batched by shape: the letterbox pads a batch to its largest image, so mixing
        shapes would make an image's vector depend on its neighbours (grey padding is pooled too).
        """
        for index, image in enumerate(images):
            check_image(image, index)
        if not images:
            return np.zeros((0, 0), np.float32)
        vectors: list[np.ndarray | None] = [None] * len(images)
        for indices in _batches_by_shape(images, self.predictor.batch_size):
            pooled = self._forward([images[i] for i in indices])
            for i, vector in zip(indices, pooled, strict=True):
                vectors[i] = vector
        return np.stack(vectors).astype(np.float32, copy=False)

    def _forward(self, images: Sequence[np.ndarray]) -> np.ndarray:
        canvas, _ = letterbox_batch(images, self.predictor.imgsz, self.predictor.stride)
        # As TorchEngine.forward: NHWC uint8 viewed as NCHW is channels_last; BGR 0-255 is what the
        # first convolution reads (read_bgr_bytes).
        x = torch.from_numpy(canvas).permute(0, 3, 1, 2).float()
        with torch.inference_mode():
            pooled = self.predictor.engine.model(x, embed=[self.layer])  # stops after that layer
        return torch.stack(pooled).float().numpy()


def backbone_output_layer(model: torch.nn.Module) -> int:
    """Index of the backbone's last layer, from the yaml the model was built from."""
    backbone = (getattr(model, "yaml", None) or {}).get("backbone")
    if not backbone:
        raise UserInputError("the checkpoint's model has no yaml with a 'backbone' section to embed from")
    return len(backbone) - 1


def _batches_by_shape(images: Sequence[np.ndarray], size: int) -> Iterator[list[int]]:
    """Indices of same-shape images, at most `size` per batch, in first-seen order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(index)
    for indices in groups.values():
        for start in range(0, len(indices), size):
            yield indices[start : start + size]
