"""The device a predictor runs on, and the torch dtypes of the precision names.

Which engine and precision run there is measured, not read from a rule (`engine_choice`); what a
host can run at all is `engine_candidates`, from `host`'s description of it.
"""

from __future__ import annotations

import torch

from yolo_core import devices

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str) -> torch.device:
    """'auto' is the first GPU when there is one; 'cpu', 'cuda', 'cuda:1' and '0' are taken as given."""
    return devices.resolve_torch_device(device)
