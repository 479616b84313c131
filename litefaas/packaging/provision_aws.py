"""AWS: the private key set in Secrets Manager (boto3), checked before CloudFormation resolves it.

The stack itself (Lambda, HTTP API, Function URL, log group, role) is osls's CloudFormation, as
before; this module adds what must exist first, the secret, and reads the URLs afterwards.
"""

from __future__ import annotations

import os
from typing import Any

from litefaas.packaging.provision import KeySet, Runner
from litefaas.packaging.targets import PackageError

DEFAULT_REGION = "us-east-1"


def region_of(region: str | None) -> str:
    """The region osls deploys to: ``--region``, else ``AWS_REGION`` (as providers/aws.yml reads it)."""
    return region or os.environ.get("AWS_REGION") or DEFAULT_REGION


def _client(service: str, region: str) -> Any:
    try:
        import boto3
    except ImportError:  # pragma: no cover - boto3 comes with the dev extra
        raise PackageError("boto3 is needed for AWS: pip install boto3") from None
    return boto3.client(service, region_name=region)


def _not_found(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return bool(code == "ResourceNotFoundException")


def push_keys(keyset: KeySet, name: str, region: str, runner: Runner) -> str:
    """Create the secret, or add a version to it (rotation: a set whose first key is new).
    Returns ``created`` or ``updated`` (``planned`` in a dry run). The value goes only to boto3."""
    runner.say(
        f"# Secrets Manager ({region}): put the private key set of {keyset.path.name} "
        f"(kids {', '.join(keyset.kids)}) into secret {name}"
    )
    if runner.dry_run:
        runner.say(
            f"boto3 secretsmanager.describe_secret(SecretId={name!r}) -> put_secret_value or create_secret"
        )
        return "planned"
    from botocore.exceptions import ClientError

    client = _client("secretsmanager", region)
    try:
        client.describe_secret(SecretId=name)
    except ClientError as exc:
        if not _not_found(exc):
            raise PackageError(f"Secrets Manager describe_secret {name} failed: {_code(exc)}") from None
        try:
            client.create_secret(
                Name=name,
                SecretString=keyset.text,
                Description="litefaas private key set (LITEFAAS_PRIVATE_KEYS)",
                Tags=[{"Key": "litefaas", "Value": "private-keys"}],
            )
        except ClientError as exc:
            raise PackageError(f"Secrets Manager create_secret {name} failed: {_code(exc)}") from None
        return "created"
    try:
        client.put_secret_value(SecretId=name, SecretString=keyset.text)
    except ClientError as exc:
        raise PackageError(f"Secrets Manager put_secret_value {name} failed: {_code(exc)}") from None
    return "updated"


def require_secret(name: str, region: str, stage: str, runner: Runner) -> None:
    """Refuse to deploy when the secret CloudFormation resolves does not exist (or has no value)."""
    runner.say(f"# Secrets Manager ({region}): secret {name} must exist before CloudFormation resolves it")
    if runner.dry_run:
        runner.say(f"boto3 secretsmanager.describe_secret(SecretId={name!r})")
        return
    from botocore.exceptions import ClientError

    try:
        described = _client("secretsmanager", region).describe_secret(SecretId=name)
    except ClientError as exc:
        if _not_found(exc):
            raise PackageError(
                f"the Secrets Manager secret {name} does not exist in {region}: push the private key set "
                f"first (`litefaas keys push --cloud aws --stage {stage} --keys keys.json`) or deploy "
                "with --keys keys.json"
            ) from None
        raise PackageError(f"Secrets Manager describe_secret {name} failed: {_code(exc)}") from None
    if described.get("DeletedDate"):
        raise PackageError(f"the Secrets Manager secret {name} is scheduled for deletion: restore it first")


def delete_keys(name: str, region: str, runner: Runner) -> None:
    """Schedule the secret's deletion (7 days' recovery window)."""
    runner.say(f"# Secrets Manager ({region}): delete secret {name} (recoverable for 7 days)")
    if runner.dry_run:
        runner.say(f"boto3 secretsmanager.delete_secret(SecretId={name!r}, RecoveryWindowInDays=7)")
        return
    from botocore.exceptions import ClientError

    try:
        _client("secretsmanager", region).delete_secret(SecretId=name, RecoveryWindowInDays=7)
    except ClientError as exc:
        if not _not_found(exc):
            raise PackageError(f"Secrets Manager delete_secret {name} failed: {_code(exc)}") from None


def stack_urls(stage: str, region: str) -> dict[str, str]:
    """The HTTP API and Function URL from the stack's outputs (``litefaas-STAGE``)."""
    from botocore.exceptions import ClientError

    try:
        stacks = _client("cloudformation", region).describe_stacks(StackName=f"litefaas-{stage}")["Stacks"]
    except ClientError as exc:
        raise PackageError(f"cannot read the stack litefaas-{stage}: {_code(exc)}") from None
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stacks[0].get("Outputs", [])}
    urls = {}
    if "HttpApiUrl" in outputs:
        urls["http-api"] = outputs["HttpApiUrl"].rstrip("/")
    for key, value in outputs.items():
        if key.endswith("LambdaFunctionUrl"):
            urls["function-url"] = value.rstrip("/")
    return urls


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__)
