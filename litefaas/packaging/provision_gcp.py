"""Google Cloud: what a new project needs before ``gcloud functions deploy --gen2``, and after.

First deploy, each step idempotent (a later deploy finds everything in place and changes nothing):

1. the APIs: Cloud Functions, Cloud Run, Cloud Build, Artifact Registry, Secret Manager, IAM;
2. the function's own runtime service account, ``litefaas-STAGE-fn`` (created if absent);
3. the private key set in Secret Manager: pushed with ``--keys`` (a new version, or the secret
   created), else its existence checked;
4. ``roles/secretmanager.secretAccessor`` on that one secret for the runtime service account;
5. the function itself, from the plugin's plan (``gcloud functions deploy --gen2 … --service-account``).

Key material reaches ``gcloud`` only on stdin (``--data-file=-``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from litefaas.packaging.provision import KeySet, Runner
from litefaas.packaging.targets import PackageError

DEFAULT_REGION = "us-central1"
APIS = (
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "secretmanager.googleapis.com",
    "iam.googleapis.com",
)
ACCESSOR = "roles/secretmanager.secretAccessor"


def region_of(region: str | None) -> str:
    return region or os.environ.get("GOOGLE_CLOUD_REGION") or DEFAULT_REGION


def function_name(stage: str) -> str:
    return f"litefaas-{stage}-predict"


def service_account_id(stage: str) -> str:
    """6-30 characters of [a-z0-9-], starting with a letter."""
    name = re.sub(r"[^a-z0-9-]", "-", f"litefaas-{stage}-fn".lower())[:30].rstrip("-")
    return name if len(name) >= 6 else f"{name}-fn0000"[:6]


def service_account_email(stage: str, project: str) -> str:
    return f"{service_account_id(stage)}@{project}.iam.gserviceaccount.com"


def resolve_project(params: Mapping[str, str], runner: Runner) -> str:
    """``gcpProject``, else gcloud's configured project (``$PROJECT`` in a dry run)."""
    if params.get("gcpProject"):
        return params["gcpProject"]
    project = runner.run(
        ["gcloud", "config", "get-value", "project"],
        "the project: gcloud's configured one",
        capture="PROJECT",
    )
    if not project or project == "(unset)":
        raise PackageError(
            "no Google Cloud project: `gcloud config set project PROJECT_ID` or --param gcpProject=PROJECT_ID"
        )
    return project


def push_keys(keyset: KeySet, name: str, project: str, runner: Runner) -> None:
    """A new version of the secret (created with automatic replication if absent); the key set on stdin."""
    flag = f"--project={project}"

    def add_version() -> None:
        runner.run(
            ["gcloud", "secrets", "versions", "add", name, "--data-file=-", flag],
            f"a new version of secret {name}: the private key set (kids {', '.join(keyset.kids)}) on stdin",
            data=keyset.data,
            stdin=keyset.path.name,
        )

    def create() -> None:
        runner.run(
            [
                "gcloud",
                "secrets",
                "create",
                name,
                "--replication-policy=automatic",
                "--labels=litefaas=private-keys",
                "--data-file=-",
                flag,
            ],
            f"create secret {name} with the private key set (kids {', '.join(keyset.kids)}) on stdin",
            data=keyset.data,
            stdin=keyset.path.name,
        )

    runner.branch(
        ["gcloud", "secrets", "describe", name, flag, "--format=value(name)"],
        f"Secret Manager: does secret {name} exist?",
        add_version,
        create,
    )


def provision(stage: str, project: str, runner: Runner, keyset: KeySet | None, secret: str) -> str:
    """Steps 1-4 above; returns the runtime service account's email."""
    flag = f"--project={project}"
    runner.run(["gcloud", "services", "enable", *APIS, flag], "enable the APIs a gen2 function uses")
    email = service_account_email(stage, project)
    runner.branch(
        ["gcloud", "iam", "service-accounts", "describe", email, flag, "--format=value(email)"],
        f"the function's runtime service account {email}",
        lambda: None,
        lambda: runner.run(
            [
                "gcloud",
                "iam",
                "service-accounts",
                "create",
                service_account_id(stage),
                f"--display-name=litefaas {stage} function",
                flag,
            ],
            "create it",
        ),
    )
    if keyset is not None:
        push_keys(keyset, secret, project, runner)
    elif (
        runner.exists(
            ["gcloud", "secrets", "describe", secret, flag, "--format=value(name)"],
            f"Secret Manager: secret {secret} must exist",
        )
        is False
    ):
        raise PackageError(
            f"the Secret Manager secret {secret} does not exist in project {project}: push the private key "
            f"set first (`litefaas keys push --cloud gcp --stage {stage} --keys keys.json`) or deploy with "
            "--keys keys.json"
        )
    runner.run(
        [
            "gcloud",
            "secrets",
            "add-iam-policy-binding",
            secret,
            f"--member=serviceAccount:{email}",
            f"--role={ACCESSOR}",
            "--condition=None",
            flag,
            "--quiet",
        ],
        f"let {email} read secret {secret} (and nothing else)",
    )
    return email


def function_url(stage: str, region: str, project: str, runner: Runner) -> str:
    return runner.run(
        [
            "gcloud",
            "functions",
            "describe",
            function_name(stage),
            "--gen2",
            f"--region={region}",
            f"--project={project}",
            "--format=value(serviceConfig.uri)",
        ],
        "the function's URL",
        capture="URL",
    )


def remove(stage: str, region: str, project: str, runner: Runner, secret: str, with_keys: bool) -> None:
    """The function and its service account; the secret too with ``with_keys``. The APIs stay enabled."""
    flag = f"--project={project}"
    runner.run(
        [
            "gcloud",
            "functions",
            "delete",
            function_name(stage),
            "--gen2",
            f"--region={region}",
            flag,
            "--quiet",
        ],
        "delete the function (its Cloud Run service and image go with it)",
    )
    runner.run(
        [
            "gcloud",
            "iam",
            "service-accounts",
            "delete",
            service_account_email(stage, project),
            flag,
            "--quiet",
        ],
        "delete its runtime service account",
    )
    if with_keys:
        runner.run(["gcloud", "secrets", "delete", secret, flag, "--quiet"], f"delete secret {secret}")
