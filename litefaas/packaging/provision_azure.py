"""Azure: a new subscription's resources from one ARM template, then the keys, then the code.

First deploy (every step idempotent: a template deployment converges, ``az keyvault secret set`` adds
a version):

1. ``az group create`` (the resource group, ``azureResourceGroup``);
2. who is deploying (``az ad signed-in-user show``, or ``--param azureDeployer=OBJECT_ID``), given
   "Key Vault Secrets Officer" on the vault by the template so that the keys can be pushed;
3. ``az deployment group create`` of ``providers/azure/main.json`` with the parameters serverless.yml
   resolved (written by ``serverless_plugins/azure.js``): storage account, Flex Consumption plan,
   function app (Python, instance memory, maximum instances, per-instance concurrency, always-ready),
   Key Vault (RBAC), the app's system-assigned identity with "Key Vault Secrets User" on the vault and
   "Storage Blob Data Owner" on its storage, and the app setting referencing the secret;
4. the private key set: ``az keyvault secret set --file`` from a 0600 copy (``--keys``), else the
   secret's existence checked;
5. the zip, from the plugin's plan (``az functionapp deployment source config-zip``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from litefaas.packaging.provision import KeySet, Runner, private_copy
from litefaas.packaging.targets import PackageError
from litefaas.paths import ROOT

TEMPLATE = ROOT / "providers" / "azure" / "main.json"
PARAMETERS_FILE = "litefaas-azure-parameters.json"
INSIGHTS_SUFFIX = "-insights"
"""What follows the function app's name in its Application Insights component's (``insightsName``)."""
SMART_DETECTOR_RULES = "Microsoft.AlertsManagement/smartDetectorAlertRules"
DELETE_ORDER = (
    "Microsoft.Web/sites",
    "Microsoft.Web/serverfarms",
    "Microsoft.Storage/storageAccounts",
    "Microsoft.Insights/components",
    "Microsoft.OperationalInsights/workspaces",
)


def names(stage: str, params: Mapping[str, str]) -> dict[str, str]:
    """The resource group, function app and vault serverless.yml names (its defaults, or --param)."""
    return {
        "group": params.get("azureResourceGroup") or f"litefaas-{stage}",
        "app": params.get("azureFunctionApp") or f"litefaas-{stage}",
        "vault": params.get("azureKeyVault") or f"litefaas-{stage}-kv",
    }


def failure_anomalies_rule(app: str) -> str:
    """The alert rule Azure makes by itself, untagged and minutes later, for a new Application
    Insights component: ``Failure Anomalies - COMPONENT`` (its "Application Insights Smart Detection"
    action group is the resource group's, shared by every component there)."""
    return f"Failure Anomalies - {app}{INSIGHTS_SUFFIX}"


def read_parameters(package_dir: Path) -> dict[str, object]:
    """The template's parameters the plugin wrote from serverless.yml (an ARM parameters file)."""
    path = package_dir / PARAMETERS_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        return {name: item["value"] for name, item in document["parameters"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise PackageError(f"osls package wrote no readable template parameters at {path}") from None


def push_keys(keyset: KeySet, vault: str, secret: str, runner: Runner, attempts: int = 1) -> None:
    """``az keyvault secret set --file`` from a 0600 copy in a 0700 folder, removed after. Right
    after the vault's roles are made, Azure can take a minute to honour them: ``attempts`` > 1 retries."""
    with private_copy(keyset) as copy:
        argv = [
            "az",
            "keyvault",
            "secret",
            "set",
            "--vault-name",
            vault,
            "--name",
            secret,
            "--file",
            str(copy),
            "--encoding",
            "utf-8",
            "--content-type",
            "application/json",
            "--output",
            "none",
        ]
        if runner.dry_run:
            argv[argv.index("--file") + 1] = f"<0600 copy of {keyset.path.name}>"
        why = f"put the private key set (kids {', '.join(keyset.kids)}) into {vault}/{secret}"
        for attempt in range(1, attempts + 1):
            try:
                runner.run(argv, why if attempt == 1 else f"{why} (attempt {attempt}: roles propagating)")
                return
            except PackageError:
                if attempt == attempts:
                    raise
                time.sleep(20)


def provision(
    stage: str,
    params: Mapping[str, str],
    location: str,
    package_dir: Path,
    runner: Runner,
    keyset: KeySet | None,
    secret: str,
) -> dict[str, str]:
    """Steps 1-4 above; returns the deployment's outputs (host name, vault, storage account, …)."""
    named = names(stage, params)
    group = named["group"]
    runner.run(
        [
            "az",
            "group",
            "create",
            "--name",
            group,
            "--location",
            location,
            "--tags",
            f"litefaas-stage={stage}",
            "--output",
            "none",
        ],
        f"the resource group {group} ({location})",
    )
    deployer = params.get("azureDeployer") or runner.run(
        ["az", "ad", "signed-in-user", "show", "--query", "id", "--output", "tsv"],
        "who deploys: given Key Vault Secrets Officer on the vault, to push the keys",
        capture="DEPLOYER",
    )
    deployer_type = "ServicePrincipal" if params.get("azureDeployerType") == "ServicePrincipal" else "User"
    raw = runner.run(
        [
            "az",
            "deployment",
            "group",
            "create",
            "--resource-group",
            group,
            "--name",
            f"litefaas-{stage}",
            "--template-file",
            str(TEMPLATE),
            "--parameters",
            f"@{package_dir / PARAMETERS_FILE}",
            "--parameters",
            f"deployerPrincipalId={deployer}",
            f"deployerPrincipalType={deployer_type}",
            "--query",
            "properties.outputs",
            "--output",
            "json",
        ],
        "storage, Flex Consumption plan and app, Key Vault, identity, roles (providers/azure/main.json)",
        capture="OUTPUTS",
    )
    outputs = _outputs(raw, named)
    vault = outputs["keyVaultName"]
    if keyset is not None:
        push_keys(keyset, vault, secret, runner, attempts=1 if runner.dry_run else 6)
    elif (
        runner.exists(
            [
                "az",
                "keyvault",
                "secret",
                "show",
                "--vault-name",
                vault,
                "--name",
                secret,
                "--query",
                "id",
                "--output",
                "tsv",
            ],
            f"Key Vault: secret {secret} must exist in {vault}",
        )
        is False
    ):
        raise PackageError(
            f"the Key Vault secret {secret} does not exist in {vault}: push the private key set "
            f"(`litefaas keys push --cloud azure --stage {stage} --keys keys.json`) or deploy with "
            "--keys keys.json"
        )
    return outputs


def _outputs(raw: str, named: Mapping[str, str]) -> dict[str, str]:
    if raw.startswith("$"):  # a dry run
        return {"keyVaultName": named["vault"], "defaultHostName": f"{named['app']}.azurewebsites.net"}
    try:
        return {name: str(item["value"]) for name, item in json.loads(raw).items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise PackageError("az deployment group create returned no outputs") from None


def function_urls(outputs: Mapping[str, str]) -> dict[str, str]:
    return {"function": f"https://{outputs['defaultHostName']}/api"}


def push_keys_only(
    keyset: KeySet, stage: str, params: Mapping[str, str], secret: str, runner: Runner
) -> None:
    push_keys(keyset, names(stage, params)["vault"], secret, runner)


def remove(stage: str, params: Mapping[str, str], runner: Runner, with_keys: bool) -> None:
    """Every resource the template made (found by its ``litefaas-stage`` tag), app first, then the
    Failure Anomalies rule Azure made for its Application Insights (after the component, which would
    otherwise make it again); the vault only ``with_keys`` (it is then soft-deleted, recoverable 7
    days). The resource group stays, and with it the group's shared Smart Detection action group."""
    named = names(stage, params)
    query = (
        "[].{id:id, type:type}" if with_keys else "[?type!='Microsoft.KeyVault/vaults'].{id:id, type:type}"
    )
    raw = runner.run(
        [
            "az",
            "resource",
            "list",
            "--resource-group",
            named["group"],
            "--tag",
            f"litefaas-stage={stage}",
            "--query",
            query,
            "--output",
            "json",
        ],
        "what the template made" + ("" if with_keys else " (the Key Vault and its keys kept)"),
        capture="RESOURCES",
    )
    if raw.startswith("$"):
        ids = ["$RESOURCE_IDS"]
    else:
        found = _listed(raw)
        rank = {kind.lower(): index for index, kind in enumerate(DELETE_ORDER)}  # ARM's types: any case
        found.sort(key=lambda item: rank.get(str(item["type"]).lower(), len(DELETE_ORDER)))
        ids = [item["id"] for item in found]
    rules = runner.run(
        [
            "az",
            "resource",
            "list",
            "--resource-group",
            named["group"],
            "--resource-type",
            SMART_DETECTOR_RULES,
            "--name",
            failure_anomalies_rule(named["app"]),
            "--query",
            "[].id",
            "--output",
            "json",
        ],
        "the Failure Anomalies rule Azure made for Application Insights (untagged; none without it)",
        capture="RULES",
    )
    ids += ["$RULE_IDS"] if rules.startswith("$") else [str(rule) for rule in _listed(rules)]
    for resource in ids:
        runner.run(["az", "resource", "delete", "--ids", resource], f"delete {resource.rsplit('/', 1)[-1]}")


def _listed(raw: str) -> list[Any]:
    """What ``az resource list --output json`` printed."""
    try:
        found = json.loads(raw or "[]")
    except ValueError:
        raise PackageError("az resource list returned no JSON") from None
    if not isinstance(found, list):
        raise PackageError("az resource list returned no list")
    return found
