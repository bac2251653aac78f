"""The monitoring CloudFormation: cfn-lint clean for every environment, the rule's pattern the very
one the publisher's events match, and least-privilege roles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.deploy.templates import write_templates
from pipeline.monitoring.declaration import build_monitoring
from pipeline.monitoring.templates import START_PIPELINE_TARGET

# cfn-lint runs over every rendered template, this one included, in test_deploy_units.py.


def _rendered(config, out: Path) -> dict:
    write_templates(config, out)
    return json.loads((out / f"{config.name}-monitoring.json").read_text())


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_rule_schedule_and_roles(env: str, tmp_path: Path) -> None:
    config = load_config(env)
    monitoring = build_monitoring(config)
    resources = _rendered(config, tmp_path)["Resources"]
    rule = resources["ViolationsRule"]["Properties"]
    assert rule["EventPattern"] == monitoring.alert_pattern  # one declaration, two renderings
    assert rule["EventBusName"] == {"Ref": "AlertBus"}
    assert rule["Targets"][0]["Arn"] == {"Fn::GetAtt": ["AlertQueue", "Arn"]}
    delivery = resources["AlertQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert [s["Principal"] for s in delivery] == [{"Service": "events.amazonaws.com"}]
    assert delivery[0]["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["ViolationsRule", "Arn"]}

    target = resources["MonitoringSchedule"]["Properties"]["Target"]
    assert target["Arn"] == START_PIPELINE_TARGET
    assert json.loads(target["Input"])["PipelineName"] == monitoring.pipeline_name
    role = resources["SchedulerRole"]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "scheduler.amazonaws.com"
    }
    (allowed,) = role["Policies"][0]["PolicyDocument"]["Statement"]
    assert allowed["Action"] == "sagemaker:StartPipelineExecution"
    assert allowed["Resource"]["Fn::Sub"].endswith(f":pipeline/{monitoring.pipeline_name}")

    publisher = resources["PublisherPolicy"]["Properties"]
    assert publisher["Roles"] == [config.roles.job_role("monitoring").rsplit("/", 1)[1]]
    actions = {s["Action"]: s for s in publisher["PolicyDocument"]["Statement"]}
    assert set(actions) == {"events:PutEvents", "cloudwatch:PutMetricData"}
    assert actions["events:PutEvents"]["Resource"] == {"Fn::GetAtt": ["AlertBus", "Arn"]}
    scope = actions["cloudwatch:PutMetricData"]["Condition"]["StringEquals"]
    assert scope == {"cloudwatch:namespace": monitoring.namespace}
