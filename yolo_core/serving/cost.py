"""What a request will cost the model, known from image headers and options before any decoding.

The cost is the number of model inputs: one per image, or one per tile (plus the whole frame with
`full_frame`) when slicing. Forward passes are that number over the batch size, so it bounds the
worker's time and the detections to merge. Above the server's cap the request is refused (413)
with both numbers, instead of holding the worker for minutes.
"""

from __future__ import annotations

from collections.abc import Sequence

from yolo_core.infer.slicing import tile_count
from yolo_core.serving.errors import RequestError
from yolo_core.serving.options import InferenceOptions


def model_inputs(sizes: Sequence[tuple[int, int]], options: InferenceOptions) -> int:
    """Model inputs for images of (width, height) `sizes`, as `predict_sliced` will cut them."""
    if not options.sliced:
        return len(sizes)
    total = 0
    for width, height in sizes:
        tiles = tile_count(height, width, options.slice_size, options.slice_overlap)
        total += tiles + (1 if options.full_frame and tiles > 1 else 0)
    return total


def check_cost(sizes: Sequence[tuple[int, int]], options: InferenceOptions, limit: int) -> int:
    """The request's cost, or a 413 that names it and the cap when it is over."""
    cost = model_inputs(sizes, options)
    if cost > limit:
        raise RequestError(
            413,
            f"request needs {cost} model inputs (tiles of slice_size={options.slice_size}, "
            f"slice_overlap={options.slice_overlap:g} over {len(sizes)} image(s)), over the limit of "
            f"{limit} per request (max_request_tiles); use a larger slice_size, a smaller "
            "slice_overlap or fewer images",
        )
    return cost
