"""Session fixtures shared by the test files: a synthetic drone dataset and one trained model.

`synthetic_dataset`: the dataset folder (data.yaml, images/, labels/, dataset.json, ...) built by
preprocessing from synthetic VisDrone-style scenes: 48 frames of 320x320, objects 14-48 px.
`trained_model_dir`: a model folder (best.pt + model.json) from one real training run on it that
learned (its model.json metrics say how well); the run's checkpoint folder is
`trained_model_dir.parent / "checkpoints"`. `tiny_dataset`: 16 such frames, for tests that train
several short runs. Tests must not modify any of them: copy first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

LEARNING_HYPERPARAMETERS = {
    "model": "yolo11n",
    "epochs": 40,  # measured on 2 CPU cores: val mAP50 0.56 after 30 epochs, 0.64-0.71 after 40
    "imgsz": 320,
    "batch": 8,
    "nbs": 8,  # one optimizer step per batch: the default (64) takes ~3 steps per epoch here
    "warmup_epochs": 1.0,
    "close_mosaic": 10,
    "val": False,  # validating an untrained model (thousands of boxes) made early epochs ~7x slower
    "plots": False,
    "seed": 0,
}
# What the run above must reach: set with a margin below the lowest val mAP50 over ten training
# seeds (benchmarks/learning_margin.py; figures in benchmarks/RESULTS.md).
MAP50_THRESHOLD = 0.5
FROM_WEIGHTS_MAP50_THRESHOLD = 0.3  # one more epoch, started from that run's best.pt, with:
# Fine-tuning settings: with optimizer "auto" a one-epoch run gets AdamW, whose first steps (fresh
# moment estimates) move every weight by about the learning rate and, in fp32, wiped the model out
# (mAP50 0.0; bf16's rounding happened to spare it). SGD at a small rate without warm-up keeps what
# was learned in both precisions (mAP50 0.65 fp32, 0.67 bf16, measured on a 2-core Xeon).
FINE_TUNING_HYPERPARAMETERS = {"optimizer": "SGD", "lr0": 0.002, "warmup_epochs": 0.0}


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from yolo_core.data.dataset import build_dataset
    from yolo_core.data.synthetic import generate_scenes

    root = tmp_path_factory.mktemp("synthetic")
    raw = generate_scenes(root / "raw", 48, seed=7, width=320, height=320, object_px=(14, 48))
    result = build_dataset(raw, root / "dataset", "visdrone", seed=7, progress=False)
    return result.root


@pytest.fixture(scope="session")
def trained_model_dir(synthetic_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from yolo_core.hyperparams import Hyperparameters
    from yolo_core.train.trainer import TrainingJob, train

    root = tmp_path_factory.mktemp("trained")
    job = TrainingJob(
        data_yaml=synthetic_dataset / "data.yaml",
        checkpoint_dir=root / "checkpoints",
        model_dir=root / "model",
        hyperparameters=Hyperparameters(**LEARNING_HYPERPARAMETERS),
        handle_signals=False,
    )
    return train(job).model_dir


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 synthetic frames of 320x320, preprocessed: for tests that train several short runs."""
    from yolo_core.data.dataset import build_dataset
    from yolo_core.data.synthetic import generate_scenes

    root = tmp_path_factory.mktemp("tiny")
    raw = generate_scenes(root / "raw", 16, seed=11, width=320, height=320, object_px=(14, 48))
    return build_dataset(raw, root / "dataset", "visdrone", seed=11, progress=False).root
