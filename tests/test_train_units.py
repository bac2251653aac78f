"""Fast checks of the training core's parts: augmentation, precision, devices, checkpoints, data."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch

from entrypoints import train as train_entry
from entrypoints.contract import TrainingPaths
from yolo_core.errors import UserInputError
from yolo_core.hyperparams import Hyperparameters
from yolo_core.train.augment import AugmentConfig, Haze, augment_config
from yolo_core.train.checkpoint import Checkpoint, CheckpointStore, atomic_write_bytes
from yolo_core.train.data_source import dataset_hash, read_data_yaml
from yolo_core.train.devices import resolve_batch, resolve_device
from yolo_core.train.precision import resolve_precision, ultralytics_amp_arg
from yolo_core.train.spot import StopSignal
from yolo_core.train.trainer import _is_complete
from yolo_core.vocabulary import cpu_has_amx_bf16

# --- augmentation ------------------------------------------------------------------------------


def test_aerial_preset_flips_both_axes_and_turns() -> None:
    config = augment_config("aerial")
    assert config.ultralytics_args()["flipud"] == 0.5 and config.ultralytics_args()["fliplr"] == 0.5
    names = [type(t).__name__ for t in config.albumentations()]
    assert names == ["RandomRotate90", "OneOf", "GaussNoise", "RandomBrightnessContrast", "Haze"]
    assert augment_config("none").albumentations() == []


def test_augment_overrides_are_checked_by_name() -> None:
    assert augment_config("aerial", {"haze_p": 0.0}).haze_p == 0.0
    with pytest.raises(UserInputError, match="unknown field"):
        augment_config("aerial", {"fog": 1})
    with pytest.raises(UserInputError, match="augment_overrides.blur_p: probability 2"):
        augment_config("aerial", {"blur_p": 2})
    with pytest.raises(UserInputError, match="'augment'"):
        augment_config("underwater")


def test_augmentations_survive_the_checkpoint_round_trip() -> None:
    """Ultralytics stores transforms with A.to_dict in the checkpoint and restores them on resume."""
    transforms = AugmentConfig().albumentations()
    restored = [A.from_dict(A.to_dict(t)) for t in transforms]
    assert [repr(t) for t in restored] == [repr(t) for t in transforms]


def test_haze_brightens_and_flattens_the_image() -> None:
    image = np.random.default_rng(0).integers(0, 120, (64, 64, 3), dtype=np.uint8)
    hazy = Haze(strength_range=(0.3, 0.3), p=1.0)(image=image)["image"]
    assert hazy.dtype == np.uint8 and hazy.shape == image.shape
    assert hazy.mean() > image.mean() + 20 and hazy.std() < image.std()


# --- precision and devices ---------------------------------------------------------------------


def test_amx_is_read_from_cpuinfo_never_assumed(tmp_path: Path) -> None:
    with_amx = tmp_path / "amx"
    with_amx.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile\n")
    without = tmp_path / "plain"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert cpu_has_amx_bf16(with_amx) and not cpu_has_amx_bf16(without)
    assert not cpu_has_amx_bf16(tmp_path / "missing")


def test_precision_resolution() -> None:
    assert resolve_precision("auto", "0") == "amp"
    assert resolve_precision("auto", "cpu", bf16_native=True, bf16_speedup=lambda: 1.6) == "bf16"
    assert resolve_precision("auto", "cpu", bf16_native=True, bf16_speedup=lambda: 1.02) == "fp32"
    assert resolve_precision("auto", "cpu", bf16_native=False, bf16_speedup=lambda: 9.0) == "fp32"
    assert resolve_precision("bf16", "0,1") == "bf16"
    with pytest.raises(UserInputError, match="'amp' needs a GPU"):
        resolve_precision("amp", "cpu", bf16_native=True)
    with pytest.raises(UserInputError, match="needs bf16 instructions"):
        resolve_precision("bf16", "cpu", bf16_native=False)


def test_the_bf16_speedup_is_measured_on_the_model_and_kept(tmp_path: Path) -> None:
    """A real forward and backward pass of yolo11n in fp32 and bf16 (tiny, 64 px), timed once:
    the second ask for the same model and shape reads the cache."""
    from yolo_core.train import precision

    speedup = precision.cpu_bf16_speedup("yolo11n", 3, 64, 2, 1, cache_root=tmp_path)
    assert speedup > 0
    (record,) = (tmp_path / "drone-yolo" / precision.SPEEDUP_CACHE).glob("*.json")
    assert json.loads(record.read_text())["speedup"] == speedup
    assert precision.cpu_bf16_speedup("yolo11n", 3, 64, 2, 1, cache_root=tmp_path) == speedup
    assert len(list(record.parent.glob("*.json"))) == 1
    precision.cpu_bf16_speedup("yolo11n", 3, 96, 2, 1, cache_root=tmp_path)  # another shape: measured
    assert len(list(record.parent.glob("*.json"))) == 2
    assert [ultralytics_amp_arg(p) for p in ("fp32", "amp", "bf16")] == [False, True, "bf16"]


def test_device_strings_for_ddp_single_gpu_and_cpu() -> None:
    """Multi-GPU DDP itself needs GPUs; here only the device strings handed to Ultralytics."""
    assert resolve_device("", gpu_count=0) == "cpu"
    assert resolve_device("", gpu_count=1) == "0"
    assert resolve_device("", gpu_count=4) == "0,1,2,3"
    assert resolve_device("cuda:1", gpu_count=2) == "1"
    assert resolve_device("CPU", gpu_count=8) == "cpu"
    with pytest.raises(UserInputError, match=r"GPU\(s\) \['2'\] requested, 2 visible"):
        resolve_device("0,2", gpu_count=2)
    with pytest.raises(UserInputError, match="'device'"):
        resolve_device("gpu", gpu_count=1)
    assert resolve_batch(-1, "0") == -1
    assert resolve_batch(-1, "cpu") == 16
    assert resolve_batch(32, "0,1") == 32
    with pytest.raises(UserInputError, match="single-GPU only"):
        resolve_batch(-1, "0,1")


# --- checkpoints -------------------------------------------------------------------------------


def _fake_checkpoint(epoch: int, epochs: int = 5) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"epoch": epoch, "ema": torch.nn.Linear(2, 2), "train_args": {"epochs": epochs}}, buffer)
    return buffer.getvalue()


def _stage(store: CheckpointStore, completed: int, partial: bool = False) -> Path:
    staged = store.staging_path("last")
    staged.write_bytes(_fake_checkpoint(completed - 1))
    return store.commit(staged, completed, partial=partial)


def test_commit_is_a_rename_and_keeps_the_last_two(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "weights")
    store.dir.mkdir()
    for completed in (1, 2, 3):
        _stage(store, completed)
    _stage(store, 3, partial=True)
    assert [p.name for p in store.files()] == ["epoch-0003.partial.pt", "epoch-0003.pt"]
    assert not list(store.dir.glob(".staging-*"))


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "weights")
    store.dir.mkdir()
    _stage(store, 1)
    newest = _stage(store, 2)
    newest.write_bytes(newest.read_bytes()[: len(newest.read_bytes()) // 2])  # torn upload
    found = store.newest_good()
    assert found is not None and found.path.name == "epoch-0001.pt" and found.completed_epochs == 1
    assert (store.dir / "epoch-0002.pt.corrupt").exists()  # kept for inspection, no longer listed
    assert [p.name for p in store.files()] == ["epoch-0001.pt"]


def test_no_usable_checkpoint_means_a_fresh_start(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path / "weights")
    store.dir.mkdir()
    (store.dir / "epoch-0001.pt").write_bytes(b"not a checkpoint")
    assert store.newest_good() is None


def test_atomic_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = atomic_write_bytes(tmp_path / "state.json", b"{}")
    assert target.read_bytes() == b"{}" and os.listdir(tmp_path) == ["state.json"]


def test_completion_is_read_from_the_checkpoint() -> None:
    def ckpt(completed: int, partial: bool = False, best_epoch: int = 0, patience: int = 100) -> Checkpoint:
        data = {"train_args": {"epochs": 10, "patience": patience}, "stopper": {"best_epoch": best_epoch}}
        return Checkpoint(Path("x"), completed, partial, data)

    assert _is_complete(ckpt(10))
    assert not _is_complete(ckpt(9))
    assert not _is_complete(ckpt(10, partial=True))  # a mid-epoch snapshot never ends a run
    assert _is_complete(ckpt(6, best_epoch=3, patience=3))  # early stopping had decided
    assert not _is_complete(ckpt(6, best_epoch=4, patience=3))


def test_first_signal_is_recorded_not_fatal() -> None:
    with StopSignal() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.received == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is not stop._handle


# --- data and the entry point's reading of the contract ------------------------------------------


def _dataset(root: Path, names: object = None, extra: str = "") -> Path:
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        (root / "images" / split / "a.jpg").write_bytes(b"jpeg")
        (root / "labels" / split / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    names = names if names is not None else {0: "car"}
    (root / "data.yaml").write_text(
        extra + "train: images/train\nval: images/val\nnames: " + json.dumps(names) + "\n"
    )
    return root / "data.yaml"


def test_data_yaml_errors_name_the_file_and_field(tmp_path: Path) -> None:
    good = _dataset(tmp_path / "good")
    assert read_data_yaml(good).class_names == ["car"]
    with pytest.raises(UserInputError, match="field 'path' must be absent"):
        read_data_yaml(_dataset(tmp_path / "abs", extra="path: /somewhere\n"))
    with pytest.raises(UserInputError, match="field 'names'"):
        read_data_yaml(_dataset(tmp_path / "nonames", names=[]))
    broken = _dataset(tmp_path / "noval")
    broken.write_text(broken.read_text().replace("images/val", "images/missing"))
    with pytest.raises(UserInputError, match="field 'val': folder .* does not exist"):
        read_data_yaml(broken)


def test_dataset_hash_prefers_the_manifest_and_follows_the_content(tmp_path: Path) -> None:
    spec = read_data_yaml(_dataset(tmp_path / "d"))
    first = dataset_hash(spec)
    (tmp_path / "d" / "labels" / "train" / "a.txt").write_text("0 0.4 0.5 0.1 0.1\n")
    assert dataset_hash(spec) != first
    (tmp_path / "d" / "dataset.json").write_text(json.dumps({"dataset_hash": "abc"}))
    assert dataset_hash(spec) == "abc"


def _contract(base: Path, channel_names: list[str]) -> TrainingPaths:
    paths = TrainingPaths(base)
    paths.config_dir.mkdir(parents=True)
    config = {name: {"TrainingInputMode": "File"} for name in channel_names}
    paths.input_data_config_file.write_text(json.dumps(config))
    paths.resource_config_file.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    return paths


def test_train_and_val_channels_become_a_data_yaml(tmp_path: Path) -> None:
    paths = _contract(tmp_path / "ml", ["train", "val"])
    for name in ("train", "val"):
        _dataset(paths.channel(name))
    data_yaml = train_entry.data_yaml_for(train_entry.channels(paths), tmp_path / "work")
    spec = read_data_yaml(data_yaml)
    assert spec.class_names == ["car"]
    assert spec.val_dirs == (paths.channel("val") / "images",)


def test_contract_errors(tmp_path: Path) -> None:
    paths = _contract(tmp_path / "ml", ["images"])
    paths.channel("images").mkdir(parents=True)
    with pytest.raises(UserInputError, match="needs a 'dataset' channel or a 'train' channel"):
        train_entry.data_yaml_for(train_entry.channels(paths), tmp_path / "work")
    with pytest.raises(UserInputError, match="channel 'missing' has no folder"):
        train_entry.channels(_contract(tmp_path / "ml2", ["missing"]))


def test_weights_come_from_the_channel_or_a_path(tmp_path: Path) -> None:
    channel = tmp_path / "weights"
    channel.mkdir()
    (channel / "start.pt").write_bytes(b"x")
    found = {"weights": channel}
    assert train_entry.weights_for(Hyperparameters(), found) == channel / "start.pt"
    assert train_entry.weights_for(Hyperparameters(weights="start.pt"), found) == channel / "start.pt"
    with pytest.raises(UserInputError, match="'weights': other.pt not found"):
        train_entry.weights_for(Hyperparameters(weights="other.pt"), found)
    assert train_entry.weights_for(Hyperparameters(), {}) is None


class _RecordingTracker:
    """Collects what the callbacks log, in place of an MLflow run."""

    def __init__(self) -> None:
        self.logged: list[tuple[int, dict]] = []

    def log_metrics(self, metrics, step):
        self.logged.append((step, dict(metrics)))

    def snapshot(self) -> None:
        pass


def test_epochs_without_validation_log_no_placeholder_metrics() -> None:
    from types import SimpleNamespace

    from yolo_core.train.tracking import TrackingCallbacks

    tracker = _RecordingTracker()
    callbacks = TrackingCallbacks(tracker)
    trainer = SimpleNamespace(
        tloss=[1.0],
        label_loss_items=lambda loss, prefix: {f"{prefix}/box_loss": loss[0]},
        metrics={"metrics/mAP50(B)": 0.0},  # Ultralytics' placeholder before any validation
        lr={"lr/pg0": 0.01},
        epochs=2,
        epoch=0,
    )
    callbacks.on_fit_epoch_end(trainer)  # epoch 1: `val: false`, nothing validated
    callbacks.on_val_end(None)  # epoch 2, the last: validated
    trainer.epoch, trainer.metrics = 1, {"metrics/mAP50(B)": 0.42}
    callbacks.on_fit_epoch_end(trainer)
    assert tracker.logged == [
        (1, {"train/box_loss": 1.0, "lr/pg0": 0.01}),
        (2, {"train/box_loss": 1.0, "metrics/mAP50(B)": 0.42, "lr/pg0": 0.01}),
    ]
