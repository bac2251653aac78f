"""boto3 clients for one environment, with the project's retry policy.

boto3 follows `AWS_ENDPOINT_URL` by itself, which is how tests and the demo point every client at
a moto server on loopback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import EnvConfig
from yolo_core.errors import UserInputError
from yolo_core.retry import aws_client_config


@dataclass
class AwsClients:
    region: str
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def client(self, service: str) -> Any:
        if service not in self._cache:
            import boto3

            self._cache[service] = boto3.session.Session(region_name=self.region).client(
                service, config=aws_client_config()
            )
        return self._cache[service]

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def sagemaker(self) -> Any:
        return self.client("sagemaker")

    def ensure_bucket(self, bucket: str) -> None:
        """Create the bucket if it is missing (the demo's and tests' moto server starts empty)."""
        from botocore.exceptions import ClientError

        try:
            self.s3.head_bucket(Bucket=bucket)
        except ClientError:
            extra = (
                {}
                if self.region == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": self.region}}
            )
            self.s3.create_bucket(Bucket=bucket, **extra)


def names_example_account(config: EnvConfig) -> bool:
    """Whether the config still names a bundled example account while AWS is the real one (no
    stand-in such as moto at AWS_ENDPOINT_URL): nothing of that account is the caller's."""
    return config.placeholder_account and not os.environ.get("AWS_ENDPOINT_URL")


def refuse_placeholder_account(config: EnvConfig, action: str) -> None:
    """The bundled configs name example accounts: against real AWS, `action` would create resources
    in whatever account the caller's credentials belong to, under names meant for someone else."""
    if names_example_account(config):
        raise UserInputError(
            f"{action}: pipeline/config/{config.name}.yaml names the example account {config.account}; "
            "put your account, roles, bucket and registry there (or use --moto for a local stand-in)"
        )
