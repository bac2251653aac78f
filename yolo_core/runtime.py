"""Make Ultralytics, albumentations, MLflow and the SageMaker SDK safe to run offline.

Every entry point, the notebook, the tests and the benchmarks call `configure_offline()` before
importing Ultralytics: without it Ultralytics fetches a font, checks for updates and tries to
auto-install packages, and on two cores it silently trains on a single thread. It reads no
environment variable: the user's conventions (an exported `YOLO_CONFIG_DIR`, `XDG_CACHE_HOME`,
`AWS_REGION`) come as arguments, from `entrypoints.environment.configure_offline`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from yolo_core.cache_dir import ULTRALYTICS, ensure_private, private_dir, set_default_root

_OFFLINE_ENV = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "false",
    "YOLO_VERBOSE": "false",
    "NO_ALBUMENTATIONS_UPDATE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "SAGEMAKER_VALIDATE_ROLE": "false",
}
_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
_configured_threads: int | None = None


def default_config_dir(config_dir: Path | None = None, cache_root: Path | None = None) -> Path:
    """Ultralytics' settings, fonts and DDP launch scripts (it writes them to `$YOLO_CONFIG_DIR/DDP`
    and runs them): `config_dir` (a user's own export), else the private cache; either way checked
    to be this user's alone, since a planted script there would be run."""
    return ensure_private(Path(config_dir)) if config_dir else private_dir(ULTRALYTICS, cache_root)


def _install_fonts(config_dir: Path) -> None:
    """Ultralytics downloads Arial for its plots unless a file of that name is present."""
    target_dir = config_dir / "Ultralytics"
    target_dir.mkdir(parents=True, exist_ok=True)
    missing = [name for name in _FONT_NAMES if not (target_dir / name).exists()]
    if not missing:
        return
    import matplotlib  # ships DejaVuSans, which renders the same labels

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in missing:
        shutil.copyfile(source, target_dir / name)


def _sagemaker_user_config(config_dir: Path) -> Path:
    """The SDK v3 sends telemetry unless a user config opts out."""
    path = config_dir / "sagemaker-user-config.yaml"
    content = "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
    if not path.exists() or path.read_text() != content:
        path.write_text(content)
    return path


def cpu_thread_count() -> int:
    """All cores this process may use (cgroup/affinity aware), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def configure_offline(
    config_dir: Path | None = None,
    threads: int | None = None,
    cache_root: Path | None = None,
    region: str = "",
) -> Path:
    """Set the environment for an offline run and return the (private) config folder.

    Call before `import ultralytics`. Settings already in the environment win, except the ones
    that would reach the network. `config_dir` (else `<cache_root>/drone-yolo/ultralytics`) is
    refused unless private. `cache_root` replaces `~/.cache` here and in later lookups that take
    no root (the ONNX cache). `region` is the SageMaker SDK's default unless AWS_DEFAULT_REGION
    is set. Safe to call more than once.
    """
    global _configured_threads
    config_dir = default_config_dir(config_dir, cache_root)
    set_default_root(cache_root)
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ.setdefault("MPLCONFIGDIR", str(config_dir / "matplotlib"))
    for key, value in _OFFLINE_ENV.items():
        os.environ[key] = value
    os.environ.setdefault("SAGEMAKER_USER_CONFIG_OVERRIDE", str(_sagemaker_user_config(config_dir)))
    os.environ.setdefault("AWS_DEFAULT_REGION", region or "us-east-1")
    _install_fonts(config_dir)
    _configured_threads = threads or cpu_thread_count()
    apply_thread_count(_configured_threads)
    return config_dir


def offline_configured() -> bool:
    """Whether `configure_offline` has run in this process (a library default must not redo it)."""
    return _configured_threads is not None


def import_openvino():  # noqa: ANN201 - the module, imported on demand (an optional dependency)
    """OpenVINO without its telemetry: `import openvino` sends a usage event to Google Analytics
    (its `openvino_telemetry` package, consent assumed where no opt-out file exists in the home
    folder). With that package blocked in this process, OpenVINO falls back to its own no-op stub;
    nothing is written to the user's home. Every import of OpenVINO in the toolkit goes here."""
    if "openvino" not in sys.modules:
        sys.modules.setdefault("openvino_telemetry", None)  # None: `import` raises ImportError
    import openvino

    return openvino


def passive_openmp_waits() -> None:
    """OpenMP threads that sleep while they wait, unless the environment says otherwise.

    Spinning waits turn a CPU shared with other work into a crawl (two threads on two busy cores:
    ~8x slower than one); sleeping ones cost ~1% on an idle machine. OpenMP reads this once, when
    torch loads it: so a command that imports torch early calls this at its own import, before
    torch (this module never imports torch).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def apply_thread_count(threads: int) -> None:
    """Use every core: Ultralytics caps torch at min(8, cores - 1) threads, i.e. one on 2 cores."""
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when it is imported later
    passive_openmp_waits()
    # Importing torch here would add seconds to steps that never use it (preprocess).
    torch = sys.modules.get("torch")
    if torch is None:
        return
    torch.set_num_threads(threads)
    # Only patch Ultralytics if it is loaded: importing it here would slow down every step.
    torch_utils = sys.modules.get("ultralytics.utils.torch_utils")
    if torch_utils is not None:
        torch_utils.NUM_THREADS = threads
