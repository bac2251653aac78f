"""Per-user caches: created 0700, and never used when someone else owns or may write to them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from entrypoints import environment
from yolo_core.cache_dir import APP_DIR, ONNX, ULTRALYTICS, UnsafeCacheDirError, private_dir
from yolo_core.runtime import configure_offline

OTHER_UID = 65534  # nobody

needs_root = pytest.mark.skipif(
    not hasattr(os, "getuid") or os.getuid() != 0, reason="giving a folder to another user needs root"
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_cache_is_created_private(tmp_path: Path) -> None:
    onnx = private_dir(ONNX, root=tmp_path / "cache")
    assert onnx == tmp_path / "cache" / APP_DIR / ONNX
    assert _mode(onnx) == 0o700 and _mode(onnx.parent) == 0o700


def test_an_own_readable_cache_is_narrowed_to_0700(tmp_path: Path) -> None:
    (tmp_path / APP_DIR).mkdir(mode=0o755)
    os.chmod(tmp_path / APP_DIR, 0o755)
    assert _mode(private_dir(root=tmp_path)) == 0o700


@needs_root
def test_a_cache_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    planted = tmp_path / APP_DIR
    planted.mkdir(mode=0o700)
    os.chown(planted, OTHER_UID, OTHER_UID)
    with pytest.raises(UnsafeCacheDirError) as caught:
        private_dir(ONNX, root=tmp_path)
    message = str(caught.value)
    assert str(planted) in message and f"uid {OTHER_UID}" in message and "\n" not in message
    assert not (planted / ONNX).exists()  # nothing was written into it


@needs_root
def test_a_link_to_a_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, OTHER_UID, OTHER_UID)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / APP_DIR).symlink_to(theirs)
    with pytest.raises(UnsafeCacheDirError, match=f"uid {OTHER_UID}"):
        private_dir(root=tmp_path / "cache")


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o1777])
def test_a_cache_others_may_write_to_is_refused(tmp_path: Path, mode: int) -> None:
    shared = tmp_path / APP_DIR / ULTRALYTICS
    shared.mkdir(parents=True, mode=0o700)
    os.chmod(shared, mode)
    with pytest.raises(UnsafeCacheDirError, match="writable by group or others") as caught:
        private_dir(ULTRALYTICS, root=tmp_path)
    assert str(shared) in str(caught.value)
    assert _mode(shared) == mode  # refused, not silently repaired


def test_onnx_exports_land_in_the_private_cache(tmp_path: Path) -> None:
    from yolo_core.infer.onnx_backend import cached_onnx_path

    weights = tmp_path / "best.pt"
    weights.write_bytes(b"not really weights: only their hash names the export")
    path = cached_onnx_path(weights, cache_root=tmp_path / "cache")
    assert path.parent == tmp_path / "cache" / APP_DIR / ONNX and path.name.startswith("best-")
    assert _mode(path.parent) == 0o700


def test_ultralytics_config_and_ddp_scripts_land_in_the_private_cache(
    tmp_path: Path, offline_env: None
) -> None:
    # Imported first: Ultralytics fixes its folder at import, and this test's is deleted with tmp_path.
    from ultralytics.utils import get_user_config_dir

    config_dir = configure_offline(cache_root=tmp_path / "cache")
    assert config_dir == tmp_path / "cache" / APP_DIR / ULTRALYTICS and _mode(config_dir) == 0o700
    assert os.environ["YOLO_CONFIG_DIR"] == str(config_dir)
    assert (config_dir / "Ultralytics" / "Arial.ttf").is_file()
    # Ultralytics derives its settings folder from YOLO_CONFIG_DIR, and writes each DDP launch
    # script and pickled trainer to `<that folder>/DDP` (ultralytics.utils.dist.generate_ddp_file).
    assert get_user_config_dir() == config_dir / "Ultralytics"


def test_an_exported_shared_config_dir_is_refused(
    tmp_path: Path, offline_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared-config"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(shared))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(UnsafeCacheDirError, match="writable by group or others"):
        environment.configure_offline()  # the entry points read the export, yolo_core checks it
