"""The monitoring alerts, declared once from an environment's config: the bus the monitoring job
publishes to, the event it sends and the pattern that routes it, the queue it lands in, the CloudWatch
namespace, and the schedule that starts the monitoring pipeline. The publisher, the CloudFormation
template and the tests all read this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.config import EnvConfig
from pipeline.deploy.declaration import build_deployment

ALERT_SOURCE = "drone-yolo.monitoring"
ALERT_DETAIL_TYPE = "Model Monitoring Violations"
METRICS_NAMESPACE = "DroneYolo/Monitoring"
# Model Monitor runs hourly schedules at the earliest; one run per captured hour.
SCHEDULE_EXPRESSION = "cron(0 * * * ? *)"


@dataclass(frozen=True)
class Monitoring:
    env: str
    project: str
    endpoint: str  # the production endpoint whose captured traffic is monitored
    pipeline_name: str  # the SageMaker pipeline the schedule starts
    publisher_role_arn: str  # the role the monitoring job runs as: it puts the metrics and the event
    bus_name: str
    rule_name: str
    queue_name: str
    schedule_name: str
    namespace: str = METRICS_NAMESPACE
    schedule_expression: str = SCHEDULE_EXPRESSION

    @property
    def alert_pattern(self) -> dict[str, Any]:
        """The EventBridge pattern of a run that found violations (the only runs that send one)."""
        return {"source": [ALERT_SOURCE], "detail-type": [ALERT_DETAIL_TYPE]}


def build_monitoring(config: EnvConfig) -> Monitoring:
    deployment = build_deployment(config)
    project = deployment.project
    return Monitoring(
        env=config.name,
        project=project,
        endpoint=deployment.endpoint_name("production"),
        pipeline_name=f"{config.pipeline_name}-monitoring",
        publisher_role_arn=config.roles.job_role("monitoring"),
        bus_name=f"{project}-monitoring",
        rule_name=f"{project}-monitoring-violations",
        queue_name=f"{project}-monitoring-alerts",
        schedule_name=f"{project}-monitoring",
    )
