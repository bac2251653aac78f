"""One image's detections, in the pixels of the image the caller passed in.

Every inference path (batched, sliced, ONNX, the server) returns this, so that evaluation,
serving and monitoring read one shape whatever produced it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """Boxes are xyxy in source-image pixels; rows of the three arrays belong together."""

    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int64

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        if not len(self.boxes) == len(self.scores) == len(self.class_ids):
            raise ValueError(
                f"Detections: {len(self.boxes)} boxes, {len(self.scores)} scores, "
                f"{len(self.class_ids)} class ids"
            )

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    @classmethod
    def concatenate(cls, parts: Sequence[Detections]) -> Detections:
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.class_ids for p in parts]),
        )

    def select(self, index: np.ndarray) -> Detections:
        """The rows picked by a boolean mask or an index array, in that order."""
        return Detections(self.boxes[index], self.scores[index], self.class_ids[index])

    def best(self, limit: int) -> Detections:
        """At most `limit` rows, the highest scores first (ties keep their order)."""
        if len(self) <= limit:
            return self
        return self.select(np.argsort(-self.scores, kind="stable")[:limit])

    def shifted(self, dx: float, dy: float) -> Detections:
        """The same boxes moved by (dx, dy): a tile's detections placed in its frame."""
        offset = np.array([dx, dy, dx, dy], dtype=np.float32)
        return Detections(self.boxes + offset, self.scores, self.class_ids)

    def to_records(self, names: dict[int, str]) -> list[dict]:
        """JSON-ready rows: what the server returns and data capture stores."""
        return [
            {
                "class_id": int(class_id),
                "class_name": names.get(int(class_id), str(int(class_id))),
                "score": round(float(score), 5),
                "box": [round(float(v), 2) for v in box],
            }
            for box, score, class_id in zip(self.boxes, self.scores, self.class_ids, strict=True)
        ]
