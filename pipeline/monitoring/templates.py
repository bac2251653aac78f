"""CloudFormation for the monitoring alerts, rendered from the same declaration the publisher reads:
the custom bus, the rule routing violation alerts to an SQS queue (with the queue policy that lets
EventBridge deliver), the EventBridge Scheduler schedule that starts the monitoring pipeline with
its own least-privilege role, and the policy the monitoring job needs to publish.

`pipeline.deploy.templates.write_templates` writes it beside the deployment templates
(`python -m pipeline templates`); `cfn-lint` checks it in the tests.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.monitoring.declaration import Monitoring

START_PIPELINE_TARGET = "arn:aws:scheduler:::aws-sdk:sagemaker:startPipelineExecution"
_ACCOUNT_ARN = "arn:${AWS::Partition}:{service}:${AWS::Region}:${AWS::AccountId}:{resource}"


def _arn(service: str, resource: str) -> dict[str, str]:
    return {"Fn::Sub": _ACCOUNT_ARN.replace("{service}", service).replace("{resource}", resource)}


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _alert_resources(monitoring: Monitoring) -> dict[str, Any]:
    queue_arn = {"Fn::GetAtt": ["AlertQueue", "Arn"]}
    return {
        "AlertBus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": monitoring.bus_name}},
        "AlertQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": monitoring.queue_name,
                "MessageRetentionPeriod": 1209600,  # 14 days: an alert outlives a long weekend
                "SqsManagedSseEnabled": True,
            },
        },
        "ViolationsRule": {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Name": monitoring.rule_name,
                "EventBusName": {"Ref": "AlertBus"},
                "State": "ENABLED",
                "EventPattern": monitoring.alert_pattern,
                "Targets": [{"Id": "alert-queue", "Arn": queue_arn}],
            },
        },
        "AlertQueuePolicy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": "AlertQueue"}],
                "PolicyDocument": _policy(
                    {
                        "Sid": "ViolationsRuleDelivers",
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": queue_arn,
                        "Condition": {
                            "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["ViolationsRule", "Arn"]}}
                        },
                    }
                ),
            },
        },
    }


def _schedule_resources(monitoring: Monitoring) -> dict[str, Any]:
    # SageMaker writes resource names lower-case in ARNs.
    pipeline_arn = _arn("sagemaker", f"pipeline/{monitoring.pipeline_name.lower()}")
    start_input = {
        "PipelineName": monitoring.pipeline_name,
        # Scheduler fills in its context attributes when it calls the target.
        "PipelineExecutionDescription": "scheduled <aws.scheduler.scheduled-time>",
    }
    return {
        "SchedulerRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "Description": f"lets Scheduler start {monitoring.pipeline_name}, nothing else",
                "AssumeRolePolicyDocument": _policy(
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "scheduler.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
                    }
                ),
                "Policies": [
                    {
                        "PolicyName": "start-monitoring-pipeline",
                        "PolicyDocument": _policy(
                            {
                                "Effect": "Allow",
                                "Action": "sagemaker:StartPipelineExecution",
                                "Resource": pipeline_arn,
                            }
                        ),
                    }
                ],
            },
        },
        "MonitoringSchedule": {
            "Type": "AWS::Scheduler::Schedule",
            "Properties": {
                "Name": monitoring.schedule_name,
                "Description": f"monitors {monitoring.endpoint}'s captured traffic",
                "ScheduleExpression": {"Ref": "ScheduleExpression"},
                "FlexibleTimeWindow": {"Mode": "OFF"},
                "State": "ENABLED",
                "Target": {
                    "Arn": START_PIPELINE_TARGET,
                    "RoleArn": {"Fn::GetAtt": ["SchedulerRole", "Arn"]},
                    "Input": json.dumps(start_input),
                },
            },
        },
    }


def _publisher_policy(monitoring: Monitoring) -> dict[str, Any]:
    """What the monitoring job's role needs to publish: this bus, this namespace."""
    return {
        "Type": "AWS::IAM::ManagedPolicy",
        "Properties": {
            "Description": f"publish {monitoring.project}'s monitoring metrics and alerts",
            "Roles": [monitoring.publisher_role_arn.rsplit("/", 1)[1]],
            "PolicyDocument": _policy(
                {
                    "Effect": "Allow",
                    "Action": "events:PutEvents",
                    "Resource": {"Fn::GetAtt": ["AlertBus", "Arn"]},
                },
                {
                    "Effect": "Allow",
                    "Action": "cloudwatch:PutMetricData",
                    "Resource": "*",  # PutMetricData has no resource: the namespace condition scopes it
                    "Condition": {"StringEquals": {"cloudwatch:namespace": monitoring.namespace}},
                },
            ),
        },
    }


def monitoring_template(monitoring: Monitoring) -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"{monitoring.project}: monitoring schedule and violation alerts ({monitoring.env})",
        "Parameters": {
            "ScheduleExpression": {
                "Type": "String",
                "Default": monitoring.schedule_expression,
                "Description": "when the monitoring pipeline runs (cron or rate)",
            }
        },
        "Resources": {
            **_alert_resources(monitoring),
            **_schedule_resources(monitoring),
            "PublisherPolicy": _publisher_policy(monitoring),
        },
        "Outputs": {
            "BusName": {"Value": {"Ref": "AlertBus"}},
            "AlertQueueUrl": {"Value": {"Ref": "AlertQueue"}},
            "AlertQueueArn": {"Value": {"Fn::GetAtt": ["AlertQueue", "Arn"]}},
            "ScheduleArn": {"Value": {"Fn::GetAtt": ["MonitoringSchedule", "Arn"]}},
        },
    }
