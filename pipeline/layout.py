"""A SageMaker training tree (/opt/ml) laid out from a dataset folder, for `make run-train`.

The dataset becomes the `dataset` channel (copied: a Docker bind mount does not follow symlinks
out of the mounted tree), and the config files are the contract's (`entrypoints/contract.py`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from entrypoints.contract import TrainingPaths, write_training_config
from yolo_core.errors import UserInputError

CHANNEL = "dataset"


def lay_out_training_tree(dataset: Path, opt_ml: Path, hyperparameters: dict[str, str]) -> Path:
    dataset = Path(dataset).expanduser().resolve()
    if not (dataset / "data.yaml").is_file():
        raise UserInputError(f"--dataset {dataset}: no data.yaml (expected preprocess's dataset folder)")
    paths = TrainingPaths(Path(opt_ml).expanduser().resolve())
    channel = paths.channel(CHANNEL)
    if channel.exists():
        shutil.rmtree(channel)
    shutil.copytree(dataset, channel)
    write_training_config(paths, hyperparameters, [CHANNEL])
    return paths.base
