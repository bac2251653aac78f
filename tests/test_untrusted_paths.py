"""Paths and archives that come from input never write or read outside their folder."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import boto3
import pytest

from pipeline.artifacts import download_s3_prefix
from yolo_core.archive import DEFAULT_MAX_BYTES, UnsafeArchiveError, check_members, extract_tar
from yolo_core.errors import UserInputError
from yolo_core.safe_paths import climbs_out, join_inside


@pytest.mark.parametrize(
    "path", ["../x", "a/../../x", "a/..", "/etc/passwd", "\\\\host\\share", "C:/x", "..\\x"]
)
def test_paths_that_climb_out(path: str) -> None:
    assert climbs_out(path)


@pytest.mark.parametrize("path", ["x.png", "a/b/c.jpg", "./a", "a..b/c", "..hidden", "a/.../b"])
def test_paths_that_stay_inside(path: str) -> None:
    assert not climbs_out(path)


def test_join_inside_names_the_path(tmp_path: Path) -> None:
    assert join_inside(tmp_path, "a/b", "key") == tmp_path / "a" / "b"
    with pytest.raises(UserInputError, match=r"key '\.\./x' points outside"):
        join_inside(tmp_path, "../x", "key")


def test_s3_keys_that_climb_out_are_refused_before_any_download(aws_env, tmp_path: Path) -> None:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="keys-test")
    client.put_object(Bucket="keys-test", Key="runs/model/best.pt", Body=b"ok")
    client.put_object(Bucket="keys-test", Key="runs/model/", Body=b"")  # a console "folder"
    local = tmp_path / "copy"
    assert (download_s3_prefix(client, "s3://keys-test/runs/model", local) / "best.pt").read_bytes() == b"ok"

    client.put_object(Bucket="keys-test", Key="runs/model/../../escaped.txt", Body=b"evil")
    fresh = tmp_path / "fresh" / "copy"
    with pytest.raises(UserInputError) as caught:
        download_s3_prefix(client, "s3://keys-test/runs/model", fresh)
    message = str(caught.value)
    assert "s3://keys-test/runs/model/../../escaped.txt" in message and "\n" not in message
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "fresh" / "escaped.txt").exists()
    assert not fresh.exists()  # refused before anything was written


def _tar(path: Path, members: list[tarfile.TarInfo], payload: bytes = b"") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(payload) if member.isfile() else None)
    return path


def _file(name: str, size: int) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size = size
    return member


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, target
    return member


def test_a_model_archive_extracts(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "model.tar.gz", [_file("best.pt", 3), _file("sub/model.json", 3)], b"abc")
    target = extract_tar(archive, tmp_path / "out")
    assert (target / "sub" / "model.json").read_bytes() == b"abc"


def test_an_archive_above_the_cap_is_refused_before_extracting(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "model.tar.gz", [_file("a.bin", 600), _file("b.bin", 600)], b"x" * 600)
    with pytest.raises(UnsafeArchiveError) as caught:
        extract_tar(archive, tmp_path / "out", max_bytes=1000)
    assert str(archive) in str(caught.value) and "1000 bytes" in str(caught.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_the_default_cap_is_20_gib() -> None:
    assert DEFAULT_MAX_BYTES == 20 * 1024**3
    with pytest.raises(UnsafeArchiveError, match="20 GiB"):
        check_members(Path("big.tar"), [_file("a", 15 * 1024**3), _file("b", 6 * 1024**3)], DEFAULT_MAX_BYTES)


@pytest.mark.parametrize(
    "member",
    [
        _link("best.pt", "/etc/passwd"),
        _link("best.pt", "model.json", tarfile.LNKTYPE),
        _link("dev", "", tarfile.CHRTYPE),
        _file("../escaped.pt", 3),
        _file("/abs/escaped.pt", 3),
    ],
    ids=["symlink", "hardlink", "device", "dotdot", "absolute"],
)
def test_links_devices_and_climbing_members_are_refused(tmp_path: Path, member: tarfile.TarInfo) -> None:
    archive = _tar(tmp_path / "model.tar.gz", [_file("model.json", 3), member], b"abc")
    with pytest.raises(UnsafeArchiveError, match=f"{archive}: member") as caught:
        extract_tar(archive, tmp_path / "a" / "out")
    assert "\n" not in str(caught.value)
    assert list((tmp_path / "a" / "out").iterdir()) == []
    assert not (tmp_path / "a" / "escaped.pt").exists()


def test_a_broken_archive_is_a_user_error(tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(b"not a tar")
    with pytest.raises(UserInputError, match="not a readable model archive"):
        extract_tar(archive, tmp_path / "out")


def test_evaluation_unpacks_a_model_archive_through_these_checks(tmp_path: Path) -> None:
    """SageMaker hands evaluate a model.tar.gz: a link in it is refused there too."""
    from yolo_core.evaluation.artifact import resolve_model_dir

    members = [_file("model.json", 3), _link("best.pt", "/etc/passwd")]
    archive = _tar(tmp_path / "model.tar.gz", members, b"abc")
    with pytest.raises(UnsafeArchiveError, match="best.pt"):
        resolve_model_dir(archive, tmp_path / "scratch")
