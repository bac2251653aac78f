"""Feature-store records from a preprocess baseline: Parquet here, offline store + feature group in moto."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.aws import AwsClients
from pipeline.config import load_config
from pipeline.feature_store import IMAGE_FEATURES, read_records, write_feature_files, write_offline_store
from yolo_core.data.stats import build_baseline, image_statistics
from yolo_core.errors import UserInputError

DATASET_HASH = "ab" * 32


@pytest.fixture
def baseline_file(tmp_path: Path) -> Path:
    """A baseline made by the preprocess statistics code from three small images."""
    rng = np.random.default_rng(0)
    images = []
    for index, brightness in enumerate((40, 120, 200)):
        pixels = np.clip(rng.normal(brightness, 20, (48, 64, 3)), 0, 255).astype(np.uint8)
        images.append({"file": f"images/frame_{index}.jpg", **image_statistics(pixels), "boxes": index + 1})
    baseline = build_baseline(
        images, {0: [(10.0, 12.0), (20.0, 8.0)], 1: [(30.0, 30.0)]}, {0: "car", 1: "bus"}
    )
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))
    return path


def test_parquet_records_round_trip(baseline_file: Path, tmp_path: Path) -> None:
    files = write_feature_files(
        baseline_file, DATASET_HASH, tmp_path / "features", event_time="2026-01-01T00:00:00+00:00"
    )
    records = read_records(files.images)
    assert files.image_count == 3 == len(records)
    assert set(records[0]) == {name for name, _ in IMAGE_FEATURES}
    assert [r["boxes"] for r in records] == [1, 2, 3]
    assert records[0]["brightness"] < records[2]["brightness"]
    assert records[1]["record_id"] == f"{DATASET_HASH[:16]}:images/frame_1.jpg"
    assert (records[0]["width"], records[0]["height"]) == (64, 48)
    classes = {row["class_name"]: row for row in read_records(files.classes)}
    assert classes["car"]["boxes"] == 2 and classes["bus"]["mean_width"] == pytest.approx(30.0)


def test_offline_store_and_feature_group_in_moto(aws_env, baseline_file: Path, tmp_path: Path) -> None:
    config = load_config("dev")
    aws = AwsClients(config.region)
    aws.ensure_bucket(config.bucket)
    files = write_feature_files(baseline_file, DATASET_HASH, tmp_path / "features")
    written = write_offline_store(config, files, DATASET_HASH, aws.sagemaker, aws.s3)

    group = aws.sagemaker.describe_feature_group(FeatureGroupName=config.feature_store.feature_group)
    assert group["FeatureGroupArn"] == written.feature_group_arn
    assert (
        group["RecordIdentifierFeatureName"] == "record_id" and group["EventTimeFeatureName"] == "event_time"
    )
    assert {(f["FeatureName"], f["FeatureType"]) for f in group["FeatureDefinitions"]} == set(IMAGE_FEATURES)
    assert written.images_uri.startswith(
        group["OfflineStoreConfig"]["S3StorageConfig"]["ResolvedOutputS3Uri"]
    )
    assert "/year=" in written.images_uri

    bucket, key = written.images_uri.removeprefix("s3://").split("/", 1)
    table = pq.read_table(io.BytesIO(aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
    assert table.to_pylist() == read_records(files.images)  # monitoring reads the same rows

    again = write_offline_store(config, files, DATASET_HASH, aws.sagemaker, aws.s3)  # group exists: reused
    assert again.feature_group_arn == written.feature_group_arn


def test_bad_baseline_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "baseline.json"
    bad.write_text(json.dumps({"images": {}}))
    with pytest.raises(UserInputError, match=r"baseline.json: field 'per_image' is missing"):
        write_feature_files(bad, DATASET_HASH, tmp_path / "out")
    bad.write_text("{not json")
    with pytest.raises(UserInputError, match="the baseline is not valid JSON"):
        write_feature_files(bad, DATASET_HASH, tmp_path / "out")
