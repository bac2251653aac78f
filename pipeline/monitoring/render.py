"""The monitoring pipeline in SageMaker: its definition (offline) and its upsert.

The DAG is `pipeline.monitoring.dag`'s, rendered by the model build's renderer; the schedule in the
monitoring CloudFormation template starts it by name with its defaults.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pipeline.config import EnvConfig
from pipeline.monitoring.dag import build_monitoring_dag
from pipeline.monitoring.declaration import build_monitoring
from pipeline.sagemaker_render import build_job_pipeline, pipeline_session


def build_monitoring_pipeline(config: EnvConfig, code_commit: str, session: Any = None) -> Any:
    name = build_monitoring(config).pipeline_name
    return build_job_pipeline(config, build_monitoring_dag(config), name, code_commit, session)


def monitoring_definition(config: EnvConfig, code_commit: str) -> dict[str, Any]:
    """The definition as a JSON-ready dict, made without calling AWS (see `definition`)."""
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    return json.loads(build_monitoring_pipeline(config, code_commit).definition())


def upsert_monitoring(config: EnvConfig, code_commit: str, boto_session: Any = None) -> str:
    """Create or update the monitoring pipeline; returns its ARN."""
    session = pipeline_session(config, boto_session)
    pipeline = build_monitoring_pipeline(config, code_commit, session=session)
    response = pipeline.upsert(
        role_arn=config.roles.pipeline,
        description=f"drone YOLO monitoring ({config.name})",
        tags=[{"Key": "environment", "Value": config.name}],
    )
    return response["PipelineArn"]
