"""Sliced inference for large drone frames: small objects seen at full resolution.

All tiles of all frames given go through the predictor's batched forward passes together (SAHI
runs one tile at a time by default); per-tile boxes are moved into frame pixels and merged across
tiles with greedy non-maximum merging, which folds boxes cut at tile borders into whole ones.
The predictor runs the tiles in batches, with a `deadline` checked between batches: a frame cut
into thousands of tiles cannot hold the worker past its caller's time limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolo_core.infer.deadline import Deadline
from yolo_core.infer.detections import Detections
from yolo_core.infer.merge import merge_detections
from yolo_core.infer.predictor import Predictor
from yolo_core.infer.slicing import crop, tile_grid


def predict_sliced(
    predictor: Predictor,
    images: Sequence[np.ndarray],
    slice_size: int = 640,
    overlap: float = 0.2,
    full_frame: bool = False,
    conf: float = 0.25,
    iou: float = 0.5,
    merge: str = "greedy_nmm",
    tile_iou: float = 0.7,
    max_det: int = 300,
    frame_max_det: int | None = None,
    deadline: Deadline | None = None,
) -> list[Detections]:
    """One `Detections` per frame, in frame pixels.

    `iou` is the cross-tile match threshold (IoS for greedy_nmm, IoU for nms); `tile_iou` is the
    NMS inside each tile. `full_frame` adds one pass over the whole frame for objects larger than
    a tile; it costs precision on small objects, so it is off by default. `max_det` bounds each
    tile's detections (as SAHI's per-slice model does); `frame_max_det`, when given, then bounds
    each frame's after merging, the best scores kept. A dense 4K frame holds far more than one
    tile's worth of objects, so the frame is not bounded by default. `deadline` is checked before
    each batch of `predictor.batch_size` tiles (the batches `Predictor.predict` would make anyway).
    """
    crops: list = []
    owners: list[int] = []
    offsets: list[tuple[int, int]] = []
    for frame_index, frame in enumerate(images):
        image = predictor.source(frame)  # on a GPU: the frame uploaded once, tiles cut there
        tiles = tile_grid(image.shape[0], image.shape[1], slice_size, overlap)
        for tile in tiles:
            crops.append(crop(image, tile))
            owners.append(frame_index)
            offsets.append((int(tile[0]), int(tile[1])))
        if full_frame and len(tiles) > 1:
            crops.append(image)
            owners.append(frame_index)
            offsets.append((0, 0))
    # One call: the predictor checks the deadline before each batch, and overlaps the letterboxing
    # of the next batch of tiles with the forward pass of this one.
    per_crop = predictor.predict(crops, conf=conf, iou=tile_iou, max_det=max_det, deadline=deadline)
    parts: list[list[Detections]] = [[] for _ in images]
    for dets, owner, (dx, dy) in zip(per_crop, owners, offsets, strict=True):
        parts[owner].append(dets.shifted(dx, dy))
    merged = [merge_detections(Detections.concatenate(p), merge, iou) for p in parts]
    return merged if frame_max_det is None else [dets.best(frame_max_det) for dets in merged]
