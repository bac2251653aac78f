"""Image metadata as feature-store records, so monitoring and analysis read the same rows.

From preprocess's baseline: one record per source image (brightness, contrast, sharpness,
resolution, number of boxes) and one per class (box counts and sizes). Both are written as Parquet
locally; the image records also go to the S3 offline store of a SageMaker Feature Store feature
group, created through the API if it is missing, in the offline store's own layout
(`<resolved uri>/year=/month=/day=/hour=/`). Only the offline store is used: moto has no
Feature Store runtime (`PutRecord`), and batch analysis needs none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.artifacts import split_s3_uri
from pipeline.config import EnvConfig
from yolo_core.errors import UserInputError
from yolo_core.jsonfile import read_json_object

RECORD_ID, EVENT_TIME = "record_id", "event_time"
IMAGE_FEATURES: tuple[tuple[str, str], ...] = (
    (RECORD_ID, "String"),
    (EVENT_TIME, "String"),
    ("dataset_hash", "String"),
    ("file", "String"),
    ("brightness", "Fractional"),
    ("contrast", "Fractional"),
    ("sharpness", "Fractional"),
    ("width", "Integral"),
    ("height", "Integral"),
    ("boxes", "Integral"),
)
IMAGES_FILE, CLASSES_FILE = "image_stats.parquet", "class_stats.parquet"


@dataclass(frozen=True)
class FeatureFiles:
    images: Path
    classes: Path
    image_count: int


@dataclass(frozen=True)
class OfflineStoreWrite:
    feature_group_arn: str
    images_uri: str
    classes_uri: str


def _load_baseline(path: Path) -> dict[str, Any]:
    baseline = read_json_object(path, "baseline")
    if not isinstance(baseline.get("per_image"), list):
        raise UserInputError(f"{path}: field 'per_image' is missing (not a preprocess baseline)")
    return baseline


def image_records(baseline: dict[str, Any], dataset_hash: str, event_time: str) -> list[dict[str, Any]]:
    records = []
    for item in baseline["per_image"]:
        records.append(
            {
                RECORD_ID: f"{dataset_hash[:16]}:{item['file']}",
                EVENT_TIME: event_time,
                "dataset_hash": dataset_hash,
                "file": str(item["file"]),
                "brightness": float(item["brightness"]),
                "contrast": float(item["contrast"]),
                "sharpness": float(item["sharpness"]),
                "width": int(item["width"]),
                "height": int(item["height"]),
                "boxes": int(item["boxes"]),
            }
        )
    return records


def class_records(baseline: dict[str, Any], dataset_hash: str, event_time: str) -> list[dict[str, Any]]:
    rows = []
    for name, summary in sorted(baseline.get("box_sizes_per_class", {}).items()):
        rows.append(
            {
                RECORD_ID: f"{dataset_hash[:16]}:{name}",
                EVENT_TIME: event_time,
                "dataset_hash": dataset_hash,
                "class_name": name,
                "boxes": int(summary.get("count", 0)),
                "mean_width": float(summary.get("width", {}).get("mean", 0.0)),
                "mean_height": float(summary.get("height", {}).get("mean", 0.0)),
                "median_sqrt_area": float(summary.get("sqrt_area", {}).get("p50", 0.0)),
            }
        )
    return rows


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_feature_files(
    baseline_file: Path, dataset_hash: str, out_dir: Path, event_time: str = ""
) -> FeatureFiles:
    """The Parquet files for one dataset version (image records and class summaries)."""
    baseline = _load_baseline(baseline_file)
    event_time = event_time or datetime.now(UTC).isoformat(timespec="seconds")
    try:
        images = image_records(baseline, dataset_hash, event_time)
        classes = class_records(baseline, dataset_hash, event_time)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        problem = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise UserInputError(f"{baseline_file}: a record of the baseline is malformed ({problem})") from None
    return FeatureFiles(
        images=_write_parquet(images, Path(out_dir) / IMAGES_FILE),
        classes=_write_parquet(classes, Path(out_dir) / CLASSES_FILE),
        image_count=len(images),
    )


@dataclass(frozen=True)
class FeatureGroupSpec:
    """Which feature group, where its offline store is, and the role it writes with."""

    name: str
    offline_store_uri: str
    role_arn: str

    @classmethod
    def of(cls, target: EnvConfig | FeatureGroupSpec) -> FeatureGroupSpec:
        if isinstance(target, FeatureGroupSpec):
            return target
        store = target.feature_store
        return cls(
            store.feature_group, target.s3_uri(store.offline_prefix), target.roles.job_role("processing")
        )


def feature_group_request(target: EnvConfig | FeatureGroupSpec) -> dict[str, Any]:
    """The CreateFeatureGroup request: offline store only, under the environment's bucket."""
    spec = FeatureGroupSpec.of(target)
    return {
        "FeatureGroupName": spec.name,
        "RecordIdentifierFeatureName": RECORD_ID,
        "EventTimeFeatureName": EVENT_TIME,
        "FeatureDefinitions": [{"FeatureName": name, "FeatureType": kind} for name, kind in IMAGE_FEATURES],
        "OfflineStoreConfig": {
            "S3StorageConfig": {"S3Uri": spec.offline_store_uri},
            "DisableGlueTableCreation": True,
        },
        "RoleArn": spec.role_arn,
        "Description": "per-image statistics of training data (brightness, contrast, sharpness, size, boxes)",
    }


def ensure_feature_group(target: EnvConfig | FeatureGroupSpec, sagemaker: Any) -> dict[str, Any]:
    """Describe the feature group, creating it first if it does not exist."""
    from botocore.exceptions import ClientError

    spec = FeatureGroupSpec.of(target)
    try:
        return sagemaker.describe_feature_group(FeatureGroupName=spec.name)
    except ClientError as exc:  # ResourceNotFound on AWS; moto answers with a server error
        if exc.response.get("Error", {}).get("Code") not in {"ResourceNotFound", "500", "InternalError"}:
            raise
    sagemaker.create_feature_group(**feature_group_request(spec))
    return sagemaker.describe_feature_group(FeatureGroupName=spec.name)


def write_offline_store(
    target: EnvConfig | FeatureGroupSpec, files: FeatureFiles, dataset_hash: str, sagemaker: Any, s3: Any
) -> OfflineStoreWrite:
    """Put the records where the feature group's offline store keeps them (Hive-style partitions)."""
    spec = FeatureGroupSpec.of(target)
    group = ensure_feature_group(spec, sagemaker)
    storage = group["OfflineStoreConfig"]["S3StorageConfig"]
    base = storage.get("ResolvedOutputS3Uri") or f"{storage['S3Uri'].rstrip('/')}/{spec.name}/data"
    now = datetime.now(UTC)
    partition = f"year={now:%Y}/month={now:%m}/day={now:%d}/hour={now:%H}"
    images_uri = f"{base.rstrip('/')}/{partition}/{dataset_hash[:16]}-{IMAGES_FILE}"
    classes_uri = f"{storage['S3Uri'].rstrip('/')}/class-stats/{dataset_hash[:16]}-{CLASSES_FILE}"
    for path, uri in ((files.images, images_uri), (files.classes, classes_uri)):
        bucket, key = split_s3_uri(uri)
        s3.upload_file(str(path), bucket, key)
    return OfflineStoreWrite(group["FeatureGroupArn"], images_uri, classes_uri)


def read_records(path_or_dir: Path) -> list[dict[str, Any]]:
    """Read image records back (a Parquet file or a folder of them), as monitoring does."""
    import pyarrow.parquet as pq

    return pq.read_table(path_or_dir).to_pylist()
