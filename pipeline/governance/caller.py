"""The caller of a guarded command: STS's answer for the credentials in use, or the OS user for a
`--local` command, which touches no AWS (its decisions go to a local audit file)."""

from __future__ import annotations

import getpass

from pipeline.aws import AwsClients
from pipeline.governance.roles import Caller, local_caller, parse_arn


def aws_caller(clients: AwsClients) -> Caller:
    """GetCallerIdentity (through the clients' retry policy) as a `Caller`."""
    return parse_arn(clients.client("sts").get_caller_identity()["Arn"])


def this_user() -> Caller:
    return local_caller(getpass.getuser())
