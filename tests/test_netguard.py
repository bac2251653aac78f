"""The network guard itself: it must catch what it claims to, and Ultralytics must pass it.

The first tests prove the guard can fail (a guard that never trips proves nothing); the last runs
a tiny train + val + predict with plain Ultralytics under it, after `configure_offline()`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import netguard
import pytest


def _forget_expected_attempts(report: Path) -> None:
    """The attempts these tests make on purpose must not fail them at teardown."""
    netguard.clear()
    report.write_text("")


def test_a_public_connection_is_refused_and_recorded(network_guard: Path) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(netguard.NetworkBlocked):
            sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed, never contacted
    finally:
        sock.close()
    assert any("192.0.2.1" in attempt for attempt in netguard.attempts())
    _forget_expected_attempts(network_guard)


def test_a_dns_lookup_is_refused_but_loopback_is_allowed(network_guard: Path) -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.com", 443)
    assert socket.getaddrinfo("localhost", 80)
    assert any("example.com" in attempt for attempt in netguard.attempts())
    _forget_expected_attempts(network_guard)


def test_a_subprocess_reports_its_attempts(tmp_path: Path) -> None:
    report = tmp_path / "attempts.txt"
    code = "import socket\ntry:\n    socket.getaddrinfo('example.org', 80)\nexcept OSError:\n    pass\n"
    subprocess.run([sys.executable, "-c", code], env=netguard.guarded_env(report), check=True, timeout=60)
    assert "example.org" in report.read_text()


def test_train_val_predict_of_a_tiny_model_stays_offline(tmp_path: Path) -> None:
    from ultralytics import YOLO

    from yolo_core.data.dataset import build_dataset
    from yolo_core.data.synthetic import generate_scenes

    raw = generate_scenes(tmp_path / "raw", 8, seed=3, width=128, height=128, object_px=(12, 32))
    dataset = build_dataset(raw, tmp_path / "dataset", "visdrone", seed=3, progress=False)
    model = YOLO("yolo11n.yaml")
    model.train(
        data=str(dataset.data_yaml),
        epochs=1,
        imgsz=64,
        batch=4,
        workers=0,
        device="cpu",
        project=str(tmp_path / "runs"),
        name="tiny",
        plots=True,  # plots are what fetch the font when it is missing
        verbose=False,
    )
    metrics = model.val(data=str(dataset.data_yaml), imgsz=64, batch=4, device="cpu", plots=False)
    assert 0.0 <= metrics.box.map50 <= 1.0  # a number came back: validation ran to the end
    images = sorted((dataset.data_yaml.parent / "images").rglob("*.jpg"))
    results = model.predict([str(p) for p in images[:2]], imgsz=64, device="cpu", verbose=False)
    assert len(results) == 2
    assert netguard.attempts() == []
