"""The production model's monitoring references in S3: where the scheduled pipeline reads them.

Why a fixed place: EventBridge Scheduler starts the monitoring pipeline with its parameters'
defaults, which cannot follow deployments; so each promotion to production copies the version's
baseline, constraints and model to `monitoring/production/` (`dag.production_references`).
"""

from __future__ import annotations

from typing import Any

from pipeline.artifacts import split_s3_uri
from pipeline.config import EnvConfig
from pipeline.monitoring.dag import production_references
from yolo_core.data.dataset import BASELINE_FILE
from yolo_core.errors import UserInputError
from yolo_core.monitoring.constraints import CONSTRAINTS_FILE


def publish_production_references(s3: Any, config: EnvConfig, tags: dict[str, str]) -> dict[str, str]:
    """Copy a version's references (its registry tags name them) where the scheduled pipeline's
    defaults read them: done when the version goes live in production. Returns input -> object."""
    sources = {
        "baseline": (tags.get("monitoring.baseline_url", ""), BASELINE_FILE),
        "constraints": (tags.get("monitoring.constraints_url", ""), CONSTRAINTS_FILE),
        "model": (tags.get("model_data_url", ""), "model.tar.gz"),
    }
    missing = sorted(name for name, (url, _) in sources.items() if not url)
    if missing:
        raise UserInputError(
            f"the version has no {', '.join(missing)} URL to monitor it with (registry tags)"
        )
    copied = {}
    for name, (url, file) in sources.items():
        bucket, key = split_s3_uri(url)
        target_bucket, prefix = split_s3_uri(production_references(config)[name])
        s3.copy_object(
            Bucket=target_bucket, Key=f"{prefix}/{file}", CopySource={"Bucket": bucket, "Key": key}
        )
        copied[name] = f"s3://{target_bucket}/{prefix}/{file}"
    return copied
