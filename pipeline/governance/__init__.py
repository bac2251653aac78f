"""Governance: who may approve, promote, deploy and roll back, and the trail of what they did.

- `roles.py`: which governance role a caller acts as, and whether it may carry out a command in an
  environment: pure functions over the `governance:` section of `pipeline/config/<env>.yaml`.
- `caller.py`: the caller, from STS (an assumed-role ARN) or, for `--local`, the OS user.
- `audit.py`: the append-only audit trail: one JSON object per event, under the environment's
  versioned S3 prefix, or a local file; read back by `python -m pipeline audit`.
- `enforce.py`: the check the guarded commands make first: a refusal is recorded, then one line.
- `policies.py`: the IAM policy documents of every role, scoped to the project's names and tags.
- `templates.py`: CloudFormation for the roles and for AWS-native CI (CodePipeline + CodeBuild).
- `cli.py`: `python -m pipeline audit`.
"""
