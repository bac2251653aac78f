"""The user's conventions are read by the entry points and reach `yolo_core` as arguments."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from entrypoints import environment
from yolo_core import runtime
from yolo_core.cache_dir import APP_DIR, ONNX, ULTRALYTICS


def test_the_cache_root_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert environment.user_cache_root() == tmp_path
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # invalid per the XDG spec: ignored
    assert environment.user_cache_root() == Path.home() / ".cache"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert environment.user_cache_root() == Path.home() / ".cache"


def test_an_exported_config_dir_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path))
    assert environment.exported_config_dir() == tmp_path
    monkeypatch.delenv("YOLO_CONFIG_DIR")
    assert environment.exported_config_dir() is None


@pytest.mark.parametrize(
    ("region", "default_region", "expected"),
    [("eu-west-1", None, "eu-west-1"), ("eu-west-1", "us-west-2", "us-west-2"), (None, None, "us-east-1")],
)
def test_aws_region_becomes_the_default_region_only_when_unset(
    tmp_path: Path,
    offline_env: None,
    monkeypatch: pytest.MonkeyPatch,
    region: str | None,
    default_region: str | None,
    expected: str,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("YOLO_CONFIG_DIR")  # the user exported none
    for key, value in (("AWS_REGION", region), ("AWS_DEFAULT_REGION", default_region)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    config_dir = environment.configure_offline()
    assert config_dir == tmp_path / "cache" / APP_DIR / ULTRALYTICS
    assert os.environ["AWS_DEFAULT_REGION"] == expected


def test_the_onnx_cache_lands_under_the_configured_root(tmp_path: Path, offline_env: None) -> None:
    from yolo_core.infer.onnx_backend import cached_onnx_path

    weights = tmp_path / "best.pt"
    weights.write_bytes(b"only their hash names the export")
    runtime.configure_offline(cache_root=tmp_path / "root")
    assert cached_onnx_path(weights).parent == tmp_path / "root" / APP_DIR / ONNX


def test_the_predictor_keeps_what_an_entry_point_configured(
    offline_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from yolo_core.infer import predictor

    calls = []
    monkeypatch.setattr(predictor, "configure_offline", lambda: calls.append(1))
    monkeypatch.delitem(sys.modules, "ultralytics", raising=False)
    assert runtime.offline_configured()  # conftest configured the process
    predictor._import_ultralytics_offline()
    assert calls == []
    monkeypatch.setattr(runtime, "_configured_threads", None)
    predictor._import_ultralytics_offline()
    assert calls == [1]
