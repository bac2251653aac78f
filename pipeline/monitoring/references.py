"""The production model's monitoring references in S3: where the scheduled pipeline reads them.

Why a fixed place: EventBridge Scheduler starts the monitoring pipeline with its parameters'
defaults, which cannot follow deployments; so each promotion to production copies the version's
baseline, constraints and model to `monitoring/production/` (`dag.production_references`), and a
rollback copies back those of the version it restores (the deployment history keeps where they are).
"""

from __future__ import annotations

from typing import Any

from pipeline.artifacts import split_s3_uri
from pipeline.config import EnvConfig
from pipeline.monitoring.dag import ground_truth_prefix, production_references
from pipeline.monitoring.declaration import build_monitoring
from yolo_core.data.dataset import BASELINE_FILE
from yolo_core.errors import UserInputError
from yolo_core.monitoring.constraints import CONSTRAINTS_FILE


def reference_sources(tags: dict[str, str]) -> dict[str, str]:
    """A version's references (input name -> S3 object), from the tags the registry gave it."""
    sources = {
        "baseline": tags.get("monitoring.baseline_url", ""),
        "constraints": tags.get("monitoring.constraints_url", ""),
        "model": tags.get("model_data_url", ""),
    }
    missing = sorted(name for name, url in sources.items() if not url)
    if missing:
        raise UserInputError(
            f"the version has no {', '.join(missing)} URL to monitor it with (registry tags)"
        )
    return sources


def publish_production_references(s3: Any, config: EnvConfig, sources: dict[str, str]) -> dict[str, str]:
    """Copy a version's references where the scheduled pipeline's defaults read them: done when the
    version goes live in production (a promotion, or a rollback to it). Returns input -> object."""
    files = {"baseline": BASELINE_FILE, "constraints": CONSTRAINTS_FILE, "model": "model.tar.gz"}
    copied = {}
    for name, file in files.items():
        bucket, key = split_s3_uri(sources[name])
        target_bucket, prefix = split_s3_uri(production_references(config)[name])
        s3.copy_object(
            Bucket=target_bucket, Key=f"{prefix}/{file}", CopySource={"Bucket": bucket, "Key": key}
        )
        copied[name] = f"s3://{target_bucket}/{prefix}/{file}"
    return copied


GROUND_TRUTH_README = "README.txt"


def seed_ground_truth_prefix(s3: Any, config: EnvConfig) -> str:
    """Put a README in the ground-truth prefix while it is empty: SageMaker fails a Processing
    input whose S3 prefix holds no object, so the hourly run would fail until labels arrive. The
    monitor reads only .jsonl there, so the README means "no quality checks yet". Returns its URI."""
    bucket, prefix = split_s3_uri(ground_truth_prefix(config, build_monitoring(config)))
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/", MaxKeys=1)
    key = f"{prefix}/{GROUND_TRUTH_README}"
    if not listed.get("KeyCount"):
        body = (
            "Ground truth for the monitored endpoint: .jsonl files in SageMaker Model Monitor's merge "
            "format (groundTruthData, eventMetadata.eventId = the request's inference id). Until one "
            "is here the monitoring pipeline runs no model-quality checks.\n"
        )
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode(), ContentType="text/plain")
    return f"s3://{bucket}/{key}"
