"""``litefaas deploy``: one cloud's deployment through serverless.yml, checked before anything leaves.

1. build the bundle (:mod:`litefaas.packaging.bundle`; reused when its inputs have not changed);
2. ``osls package`` with ``CLOUD`` set, into ``build/deploy/<cloud>-<stage>``: offline, no credentials.
   It writes the CloudFormation template (aws) or the deploy plan of provider commands (gcp, azure,
   from the plugins in ``serverless_plugins/``);
3. scan what it wrote for private keys, and refuse if there is any;
4. provision what the code needs (:func:`provision`): the private keys' secret (pushed with
   ``--keys``, else checked), and on GCP the APIs, the runtime service account and its right to
   read the secret, on Azure the ARM template (storage, Flex Consumption plan and app, Key Vault,
   identity, roles);
5. ``osls deploy --package <that folder>``: CloudFormation through osls (aws), or the plan's
   ``gcloud`` / ``az`` / ``func`` commands (gcp, azure). A dry run lists every command instead;
6. print the function's URLs, and with ``--check`` run the smoke test (:mod:`~litefaas.packaging.smoke`).

Every refusal or failure is a :class:`~litefaas.packaging.targets.PackageError`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from litefaas.packaging.bundle import DEFAULT_DIST, Bundle, Step, build_bundle
from litefaas.packaging.provision import KeySet, Runner, secret_name
from litefaas.packaging.secret_scan import refuse_findings, scan_paths
from litefaas.packaging.targets import PackageError, Target
from litefaas.paths import BUILD, OSLS_BIN, ROOT

DEPLOY_ROOT = BUILD / "deploy"
INSTALL_HINTS = {
    "node": "Node.js 20 or later",
    "gcloud": "the Google Cloud CLI: https://cloud.google.com/sdk/docs/install",
    "az": "the Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli",
    "func": "Azure Functions Core Tools: https://learn.microsoft.com/azure/azure-functions/functions-run-local",
}
RESERVED_PARAMS = frozenset({"python", "architecture"})
"""serverless.yml parameters set from the target, never given by hand."""
APP_INSIGHTS_PARAM = "azureAppInsights"
"""serverless.yml's Application Insights switch (Azure): the template's resource, the exporter."""


@dataclass(frozen=True)
class Deployment:
    """One deployment: the bundle's target, the stage, and serverless.yml's parameters."""

    target: Target
    stage: str = "dev"
    region: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    dist: Path = DEFAULT_DIST
    work: Path | None = None

    @property
    def cloud(self) -> str:
        return self.target.cloud

    @property
    def package_dir(self) -> Path:
        """Where osls writes the template or the deploy plan."""
        return self.work or DEPLOY_ROOT / f"{self.cloud}-{self.stage}"


@dataclass(frozen=True)
class Command:
    """One command to run, and where (None: the project root)."""

    argv: tuple[str, ...]
    cwd: Path | None = None

    def shell(self) -> str:
        """The command as one would type it (paths under the working folder made relative)."""
        line = shlex.join(_shown(arg) for arg in self.argv)
        return f"(cd {shlex.quote(_shown(str(self.cwd)))} && {line})" if self.cwd else line


def _shown(arg: str) -> str:
    """``arg`` with a path under the current folder (alone or after ``--flag=``) made relative."""
    flag, equals, value = arg.rpartition("=") if arg.startswith("--") else ("", "", arg)
    if not value.startswith(os.sep):
        return arg
    try:
        relative = Path(value).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return arg
    return f"{flag}{equals}{relative}"


def osls_argv(command: str, package_dir: Path, deployment: Deployment) -> list[str]:
    """``node osls <command> --package DIR --stage S [--region R] --param …`` for this deployment."""
    argv = ["node", str(OSLS_BIN), command, "--package", str(package_dir), "--stage", deployment.stage]
    if deployment.region:
        argv += ["--region", deployment.region]
    every = {"python": deployment.target.python, "architecture": deployment.target.arch, **deployment.params}
    for name, value in every.items():
        argv.append(f"--param={name}={value}")
    return argv


def osls_env(cloud: str, bundle: Bundle) -> dict[str, str]:
    """This environment for osls: the cloud, the bundle just built, no private keys, no telemetry."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LITEFAAS_PRIVATE_KEYS")}
    env |= {
        "CLOUD": cloud,
        "SLS_TELEMETRY_DISABLED": "1",
        "LITEFAAS_PYTHON": sys.executable,
        "LITEFAAS_DIST": str(bundle.path.parent),
        "LITEFAAS_BUNDLE": str(bundle.path),
    }
    return env


def read_plan(package_dir: Path, cloud: str) -> list[Command]:
    """The provider commands the gcp or azure plugin planned."""
    path = package_dir / f"litefaas-{cloud}-plan.json"
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
        return [
            Command(tuple(str(arg) for arg in item["argv"]), Path(item["cwd"]) if item.get("cwd") else None)
            for item in plan["commands"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        raise PackageError(f"osls package wrote no readable deploy plan at {path}") from None


def missing_tools(commands: Sequence[Command]) -> list[str]:
    """The programs of ``commands`` that are not on PATH."""
    tools = dict.fromkeys(command.argv[0] for command in commands)
    return [tool for tool in tools if shutil.which(tool) is None]


def require_tools(tools: Sequence[str], cloud: str) -> None:
    """Refuse to deploy when a program the deployment runs is missing, saying how to install it."""
    if tools:
        listed = "; ".join(f"{tool} ({INSTALL_HINTS.get(tool, 'install it')})" for tool in tools)
        raise PackageError(
            f"cannot deploy to {cloud}: not on PATH: {listed}. `--dry-run` shows the commands without them"
        )


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def check_toolchain(cloud: str) -> None:
    """Node and osls, which every deployment runs."""
    if shutil.which("node") is None:
        require_tools(["node"], cloud)
    if not OSLS_BIN.is_file():
        raise PackageError("node_modules/osls is missing: run `npm ci` (or `make setup`) first")


def bool_param(params: Mapping[str, str], name: str) -> bool:
    """serverless.yml's boolean parameter ``name`` as ``--param`` gives it (false when not given)."""
    value = params.get(name, "false").strip().lower()
    if value not in ("true", "false"):
        raise PackageError(f"--param {name} must be true or false, not {value[:16]!r}")
    return value == "true"


def bundle_for(deployment: Deployment, step: Step | None = None) -> Bundle:
    """The deployment's bundle (kept when its inputs have not changed); with
    ``--param azureAppInsights=true``, the Azure bundle vendors azure-monitor-opentelemetry."""
    app_insights = bool_param(deployment.params, APP_INSIGHTS_PARAM)
    return build_bundle(deployment.target, deployment.dist, step=step, app_insights=app_insights)


SNAPSTART_MAX_TMP_MB = 512


def check_snapstart(params: Mapping[str, str]) -> None:
    """Refuse, before anything is built, what Lambda SnapStart does not allow with ``snapStart=true``:
    provisioned concurrency, a ``/tmp`` over 512 MB, EFS (litefaas mounts none)."""
    if not bool_param(params, "snapStart"):
        return
    if params.get("provisionedConcurrency", "0").strip() not in ("", "0"):
        raise PackageError(
            "--param snapStart=true: Lambda SnapStart does not work with provisioned concurrency;"
            " set provisionedConcurrency=0 (or leave SnapStart off)"
        )
    storage = params.get("ephemeralStorageSize", str(SNAPSTART_MAX_TMP_MB)).strip()
    if not storage.isdigit() or int(storage) > SNAPSTART_MAX_TMP_MB:
        raise PackageError(
            f"--param snapStart=true: Lambda SnapStart allows a /tmp of at most {SNAPSTART_MAX_TMP_MB} MB,"
            f" not ephemeralStorageSize={storage[:16]}"
        )
    if params.get("fileSystemConfig"):
        raise PackageError(
            "--param snapStart=true: Lambda SnapStart does not work with EFS (fileSystemConfig)"
        )


def osls_package(deployment: Deployment, bundle: Bundle) -> list[Command]:
    """``osls package`` into the deployment's folder, the secret scan of what it wrote, and the
    provider commands that deploy it (``osls deploy`` for aws, the plugin's plan for gcp and azure)."""
    package_dir = deployment.package_dir
    if deployment.cloud == "aws":
        check_snapstart(deployment.params)
    shutil.rmtree(package_dir, ignore_errors=True)
    argv = osls_argv("package", package_dir, deployment)
    argv[0] = shutil.which("node") or "node"
    result = subprocess.run(  # noqa: S603 - argv built here
        argv, cwd=ROOT, env=osls_env(deployment.cloud, bundle), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PackageError(f"osls package failed:\n{_tail(result.stdout + result.stderr)}")
    scan_package(package_dir)
    if deployment.cloud == "aws":
        return [Command(tuple(osls_argv("deploy", package_dir, deployment)), None)]
    return read_plan(package_dir, deployment.cloud)


def scan_package(package_dir: Path) -> None:
    """Refuse a template, state file or deploy plan that holds private key material."""
    written = [path for path in package_dir.iterdir() if path.is_file()]
    refuse_findings(scan_paths(written, base=package_dir), "to deploy")


def package(deployment: Deployment, bundle: Bundle, step: Step | None = None) -> tuple[Bundle, list[Command]]:
    """:func:`osls_package` of ``bundle``; on Azure, where serverless.yml itself (not ``--param``)
    says otherwise of Application Insights than the bundle was built for, the bundle built again
    as it says and packaged again (the template would set a connection string the function could
    not use, or none for an exporter it carries)."""
    commands = osls_package(deployment, bundle)
    if deployment.cloud != "azure" or APP_INSIGHTS_PARAM in deployment.params:
        return bundle, commands
    from litefaas.packaging import provision_azure

    asked = provision_azure.read_parameters(deployment.package_dir).get("appInsights") is True
    if asked == bundle.exports_to_app_insights:
        return bundle, commands
    resolved = replace(deployment, params={**deployment.params, APP_INSIGHTS_PARAM: str(asked).lower()})
    if step is not None:
        step(f"serverless.yml sets azureAppInsights={str(asked).lower()}: the bundle built again")
    bundle = bundle_for(resolved, step)
    if step is not None:
        step("packaged again")
    return bundle, osls_package(resolved, bundle)


def osls_deploy(deployment: Deployment, bundle: Bundle, commands: Sequence[Command]) -> None:
    """``osls deploy`` of the packaged folder, its output on this terminal; the provider ``commands``
    it runs must be on PATH (gcp and azure)."""
    if deployment.cloud != "aws":
        require_tools(missing_tools(commands), deployment.cloud)
    node = shutil.which("node") or "node"
    argv = [node, *osls_argv("deploy", deployment.package_dir, deployment)[1:]]
    env = osls_env(deployment.cloud, bundle)
    result = subprocess.run(argv, cwd=ROOT, env=env, check=False)  # noqa: S603 - argv built here
    if result.returncode != 0:
        raise PackageError(
            f"the {deployment.cloud} deployment failed (osls deploy exited with {result.returncode})"
        )


# ------------------------------------------------------------------------------------ provisioning
# What a new account needs before the code (litefaas.packaging.provision_aws, _gcp, _azure), and
# what the deployment answers at after it.


@dataclass
class Provisioned:
    """What provisioning learnt that the rest of the deploy needs (the GCP project, Azure's outputs)."""

    project: str = ""
    outputs: dict[str, str] = field(default_factory=dict)


def prepare(deployment: Deployment, runner: Runner) -> Deployment:
    """Before ``osls package``: on GCP, the project and the runtime service account the plan names."""
    if deployment.cloud != "gcp":
        return deployment
    from litefaas.packaging import provision_gcp

    project = provision_gcp.resolve_project(deployment.params, runner)
    params = dict(deployment.params)
    params["gcpProject"] = project
    params.setdefault("gcpServiceAccount", provision_gcp.service_account_email(deployment.stage, project))
    return replace(deployment, params=params)


def provision(deployment: Deployment, runner: Runner, keyset: KeySet | None) -> Provisioned:
    """What must exist before the code: the secret (pushed from ``keyset``, else checked) and, on GCP
    and Azure, the APIs, identities, roles and resources (see each cloud's module)."""
    secret = secret_name(deployment.stage, dict(deployment.params))
    if deployment.cloud == "aws":
        from litefaas.packaging import provision_aws

        region = provision_aws.region_of(deployment.region)
        if keyset is not None:
            provision_aws.push_keys(keyset, secret, region, runner)
        else:
            provision_aws.require_secret(secret, region, deployment.stage, runner)
        return Provisioned()
    if deployment.cloud == "gcp":
        from litefaas.packaging import provision_gcp

        project = deployment.params["gcpProject"]
        provision_gcp.provision(deployment.stage, project, runner, keyset, secret)
        return Provisioned(project=project)
    from litefaas.packaging import provision_azure

    location = deployment.region or os.environ.get("AZURE_REGION") or "eastus"
    outputs = provision_azure.provision(
        deployment.stage, deployment.params, location, deployment.package_dir, runner, keyset, secret
    )
    return Provisioned(outputs=outputs)


def function_urls(deployment: Deployment, provisioned: Provisioned, runner: Runner) -> dict[str, str]:
    """The deployed function's base URLs (``…/predict``, ``…/keys`` and ``…/health`` below each)."""
    if deployment.cloud == "aws":
        from litefaas.packaging import provision_aws

        region = provision_aws.region_of(deployment.region)
        if runner.dry_run:
            return {"http-api": f"https://$API_ID.execute-api.{region}.amazonaws.com"}
        return provision_aws.stack_urls(deployment.stage, region)
    if deployment.cloud == "gcp":
        from litefaas.packaging import provision_gcp

        region = provision_gcp.region_of(deployment.region)
        return {"function": provision_gcp.function_url(deployment.stage, region, provisioned.project, runner)}
    from litefaas.packaging import provision_azure

    return provision_azure.function_urls(provisioned.outputs)


def remove(deployment: Deployment, runner: Runner, with_keys: bool, bundle: Bundle | None = None) -> None:
    """What ``deploy`` made, gone; the private keys' secret too only ``with_keys``."""
    params = dict(deployment.params)
    secret = secret_name(deployment.stage, params)
    if deployment.cloud == "aws":
        from litefaas.packaging import provision_aws

        node = shutil.which("node") or "node"
        argv = [node, str(OSLS_BIN), "remove", "--stage", deployment.stage]
        if deployment.region:
            argv += ["--region", deployment.region]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LITEFAAS_PRIVATE_KEYS")}
        runner.env = env | {"CLOUD": "aws", "SLS_TELEMETRY_DISABLED": "1"}
        runner.run(argv, f"delete the CloudFormation stack litefaas-{deployment.stage} (osls remove)")
        if with_keys:
            provision_aws.delete_keys(secret, provision_aws.region_of(deployment.region), runner)
        return
    if deployment.cloud == "gcp":
        from litefaas.packaging import provision_gcp

        project = provision_gcp.resolve_project(params, runner)
        region = provision_gcp.region_of(deployment.region)
        provision_gcp.remove(deployment.stage, region, project, runner, secret, with_keys)
        return
    from litefaas.packaging import provision_azure

    provision_azure.remove(deployment.stage, params, runner, with_keys)


def push_keys(
    cloud: str, stage: str, keyset: KeySet, runner: Runner, params: Mapping[str, str], region: str | None
) -> None:
    """``litefaas keys push``: the private key set into the cloud's secret store, nothing else."""
    secret = secret_name(stage, dict(params))
    if cloud == "aws":
        from litefaas.packaging import provision_aws

        provision_aws.push_keys(keyset, secret, provision_aws.region_of(region), runner)
    elif cloud == "gcp":
        from litefaas.packaging import provision_gcp

        provision_gcp.push_keys(keyset, secret, provision_gcp.resolve_project(params, runner), runner)
    else:
        from litefaas.packaging import provision_azure

        provision_azure.push_keys_only(keyset, stage, params, secret, runner)
