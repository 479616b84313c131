"""Azure: the ARM template's shapes and parameters (the ones serverless.yml passes), the dry run that
prints every command and the template, no key material anywhere, and every ``az`` command through the
real Azure CLI's parser with an empty configuration (refused only for want of ``az login``).

The Azure CLI (PyPI ``azure-cli``) is not installed by ``make setup``: here it took 3.5 minutes and
656 MB (154 packages), over the test suite's budget. Those tests run where ``az`` is on PATH or
``LITEFAAS_TEST_AZ`` names one, and are skipped otherwise, saying so."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from fixtures.requests import make_keys

from litefaas import paths
from litefaas.cli import package as package_cmd
from litefaas.packaging import provision, provision_azure
from litefaas.packaging.secret_scan import known_private_keys, scan_paths
from litefaas.packaging.targets import PackageError

TEMPLATE = json.loads(provision_azure.TEMPLATE.read_text(encoding="utf-8"))
AZ = os.environ.get("LITEFAAS_TEST_AZ") or shutil.which("az")
RULES = provision_azure.SMART_DETECTOR_RULES
NEEDS_NODE = pytest.mark.skipif(
    shutil.which("node") is None or not paths.OSLS_BIN.is_file(),
    reason="node or node_modules/osls is missing",
)
API_VERSIONS = {
    "Microsoft.Storage/storageAccounts": "2023-05-01",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "2023-05-01",
    "Microsoft.KeyVault/vaults": "2023-07-01",
    "Microsoft.Web/serverfarms": "2024-04-01",
    "Microsoft.Web/sites": "2024-04-01",
    "Microsoft.Authorization/roleAssignments": "2022-04-01",
    "Microsoft.OperationalInsights/workspaces": "2023-09-01",
    "Microsoft.Insights/components": "2020-02-02",
}
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"


def resource(kind: str) -> dict:
    [found] = [item for item in TEMPLATE["resources"] if item["type"] == kind]
    return found


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """``litefaas deploy --cloud azure --dry-run --keys`` with non-default parameters."""
    tmp = tmp_path_factory.mktemp("azure")
    keys = make_keys()
    key_file = tmp / "keys.json"
    key_file.write_text(keys.private_json)
    key_file.chmod(0o600)
    out = io.StringIO()
    params = ["memorySize=2048", "maxInstances=50", "concurrency=16", "minInstances=2", "timeout=30"]
    with contextlib.redirect_stdout(out):
        code = package_cmd.main(
            ["deploy", "--cloud", "azure", "--stage", "prod", "--dry-run", "--work", str(tmp / "work"),
             "--keys", str(key_file), *[f"--param={p}" for p in params]]
        )  # fmt: skip
    assert code == 0
    return {"out": out.getvalue(), "work": tmp / "work", "keys": keys, "key_file": key_file}


def test_template_resource_shapes():
    """The ARM template pins API versions and wires Flex Consumption, identities and Key Vault."""
    assert TEMPLATE["$schema"].endswith("/deploymentTemplate.json#")
    for item in TEMPLATE["resources"]:
        assert API_VERSIONS[item["type"]] == item["apiVersion"], item["type"]
        assert {"type", "apiVersion", "name"} <= item.keys()
    storage = resource("Microsoft.Storage/storageAccounts")
    assert storage["kind"] == "StorageV2" and storage["sku"]["name"] == "Standard_LRS"
    assert storage["properties"]["allowSharedKeyAccess"] is False
    plan = resource("Microsoft.Web/serverfarms")
    assert (
        plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"} and plan["properties"]["reserved"] is True
    )
    site = resource("Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux" and site["identity"] == {"type": "SystemAssigned"}
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "[parameters('pythonVersion')]"}
    scale = config["scaleAndConcurrency"]
    assert scale["instanceMemoryMB"] == "[parameters('instanceMemoryMB')]"
    assert scale["maximumInstanceCount"] == "[parameters('maximumInstanceCount')]"
    assert scale["triggers"]["http"]["perInstanceConcurrency"] == "[parameters('perInstanceConcurrency')]"
    assert "alwaysReadyInstances" in TEMPLATE["variables"]["alwaysReady"]
    assert config["deployment"]["storage"]["authentication"]["type"] == "SystemAssignedIdentity"
    vault = resource("Microsoft.KeyVault/vaults")["properties"]
    assert vault["enableRbacAuthorization"] is True and vault["sku"] == {"family": "A", "name": "standard"}
    assert vault["tenantId"] == "[subscription().tenantId]"
    roles = [
        item for item in TEMPLATE["resources"] if item["type"] == "Microsoft.Authorization/roleAssignments"
    ]
    assert TEMPLATE["variables"]["keyVaultSecretsUser"] == KEY_VAULT_SECRETS_USER
    secrets_user = [
        r for r in roles if "variables('keyVaultSecretsUser')" in r["properties"]["roleDefinitionId"]
    ]
    assert len(secrets_user) == 1
    assert "identity.principalId" in secrets_user[0]["properties"]["principalId"]
    assert secrets_user[0]["scope"].startswith("[format('Microsoft.KeyVault/vaults/")
    reference = TEMPLATE["variables"]["baseSettings"]["LITEFAAS_PRIVATE_KEYS"]
    assert reference.startswith("[format('@Microsoft.KeyVault(SecretUri=https://")
    # no reference() where ARM refuses it
    assert "reference(" not in json.dumps(TEMPLATE["variables"])


def test_application_insights_is_made_and_wired_only_when_asked_for():
    """With appInsights: a workspace-based Application Insights resource, its connection string in
    the app's settings (read from the resource, never a parameter or an output); without, neither."""
    assert TEMPLATE["parameters"]["appInsights"] == {
        "type": "bool", "defaultValue": False, "metadata": TEMPLATE["parameters"]["appInsights"]["metadata"],
    }  # fmt: skip
    workspace = resource("Microsoft.OperationalInsights/workspaces")
    component = resource("Microsoft.Insights/components")
    for item in (workspace, component):
        assert item["condition"] == "[parameters('appInsights')]"
        assert item["tags"] == "[variables('tags')]"  # found and deleted by `litefaas remove`
    assert component["kind"] == "web" and component["properties"]["Application_Type"] == "web"
    workspace_id = "[resourceId('Microsoft.OperationalInsights/workspaces', variables('workspaceName'))]"
    assert component["properties"]["WorkspaceResourceId"] == workspace_id
    assert component["dependsOn"] == [workspace_id]
    # a workspace name is at most 63 characters; the app's name may be 60
    assert TEMPLATE["parameters"]["functionAppName"]["maxLength"] + len("-logs") > 63
    assert (
        TEMPLATE["variables"]["workspaceName"]
        == "[take(format('{0}-logs', parameters('functionAppName')), 63)]"
    )
    site = resource("Microsoft.Web/sites")
    settings = site["properties"]["siteConfig"]["appSettings"]
    component_id = "resourceId('Microsoft.Insights/components', variables('insightsName'))"
    assert (
        f"if(parameters('appInsights'), createObject('APPLICATIONINSIGHTS_CONNECTION_STRING', "
        f"reference({component_id}, '2020-02-02').ConnectionString), createObject())"
    ) in settings
    assert settings.count("(") == settings.count(")")
    assert f"[{component_id}]" in site["dependsOn"]
    assert "ConnectionString" not in json.dumps(TEMPLATE.get("outputs", {}))
    assert not any("connection" in name.lower() for name in TEMPLATE["parameters"])


@NEEDS_NODE
def test_parameters_are_the_ones_serverless_yml_passes(dry_run):
    """The parameters file gives every required template parameter, typed, and never the keys."""
    document = json.loads((dry_run["work"] / provision_azure.PARAMETERS_FILE).read_text())
    given = {name: item["value"] for name, item in document["parameters"].items()}
    declared = TEMPLATE["parameters"]
    required = {name for name, spec in declared.items() if "defaultValue" not in spec}
    from_cli = {"deployerPrincipalId", "deployerPrincipalType"}
    assert required <= given.keys() and given.keys() <= declared.keys() - from_cli
    assert given["instanceMemoryMB"] == 2048 and given["maximumInstanceCount"] == 50
    assert given["perInstanceConcurrency"] == 16 and given["alwaysReadyInstances"] == 2
    assert given["pythonVersion"] == "3.12" and given["functionTimeout"] == "00:00:30"
    assert given["functionAppName"] == "litefaas-prod" and given["keyVaultName"] == "litefaas-prod-kv"
    assert given["privateKeysSecret"] == "litefaas-prod-private-keys"
    assert "LITEFAAS_PRIVATE_KEYS" not in given["appSettings"]
    assert given["appInsights"] is False  # serverless.yml's default
    for name, value in given.items():
        spec = declared[name]
        assert {"int": int, "string": str, "object": dict, "bool": bool}[spec["type"]] is type(value), name
        if "allowedValues" in spec:
            assert value in spec["allowedValues"], name


@NEEDS_NODE
def test_dry_run_prints_every_command_and_the_template(dry_run):
    """The dry run prints every az command in order, the template and the function's URL."""
    lines = [line for line in dry_run["out"].splitlines() if line.startswith(("az ", "DEPLOYER", "OUTPUTS"))]
    assert [shlex.split(line.partition("$(")[2] or line)[1:3] for line in lines] == [
        ["group", "create"], ["ad", "signed-in-user"], ["deployment", "group"],
        ["keyvault", "secret"], ["functionapp", "deployment"],
    ]  # fmt: skip
    assert '"Microsoft.Web/serverfarms"' in dry_run["out"]
    assert "https://litefaas-prod.azurewebsites.net/api" in dry_run["out"]


@NEEDS_NODE
def test_key_material_is_in_no_argv_output_or_template(dry_run):
    """No key material appears in the work folder, the template or the dry-run output."""
    needles = known_private_keys({"LITEFAAS_PRIVATE_KEYS": dry_run["keys"].private_json})
    out_file = dry_run["work"] / "dry-run.txt"
    out_file.write_text(dry_run["out"])
    assert scan_paths([dry_run["work"], provision_azure.TEMPLATE, out_file], needles=needles) == []


def test_keys_are_pushed_from_a_private_copy_removed_after(tmp_path):
    """Keys are pushed from a 0600 copy in a 0700 folder, deleted once az is done."""
    path = tmp_path / "keys.json"
    path.write_text(make_keys().private_json)
    path.chmod(0o600)
    seen = {}

    def spawn(argv, **kwargs):
        copy = Path(argv[argv.index("--file") + 1])
        seen["mode"] = copy.stat().st_mode & 0o777
        seen["folder"] = copy.parent.stat().st_mode & 0o777
        seen["same"] = copy.read_text() == path.read_text().strip()
        seen["copy"] = copy
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    runner = provision.Runner(dry_run=False, out=io.StringIO(), spawn=spawn)
    shutil_which = shutil.which
    try:
        shutil.which = lambda name: "/bin/true" if name == "az" else shutil_which(name)
        provision_azure.push_keys(provision.read_private_keyset(path), "kv", "s", runner)
    finally:
        shutil.which = shutil_which
    assert seen["mode"] == 0o600 and seen["folder"] == 0o700 and seen["same"]
    assert not seen["copy"].exists()


def test_remove_deletes_what_the_template_made_app_first_and_the_insights_before_its_workspace():
    """`litefaas remove` deletes every resource the stage's tag finds: the app, its plan and storage,
    then Application Insights before the workspace it writes to (ARM lists its type in lower case);
    the vault with its keys."""
    kinds = [
        "Microsoft.OperationalInsights/workspaces", "Microsoft.KeyVault/vaults", "microsoft.insights/components",
        "Microsoft.Storage/storageAccounts", "Microsoft.Web/sites", "Microsoft.Web/serverfarms",
    ]  # fmt: skip
    listed = [
        {"id": f"/subscriptions/0/resourceGroups/rg/providers/{kind}/r{i}", "type": kind}
        for i, kind in enumerate(kinds)
    ]
    rule = "/subscriptions/0/resourceGroups/rg/providers/microsoft.alertsmanagement/smartDetectorAlertRules/r"
    calls = []

    def spawn(argv, **kwargs):
        calls.append(argv)
        out = b""
        if argv[1:3] == ["resource", "list"]:
            out = json.dumps([rule] if "--resource-type" in argv else listed).encode()
        return subprocess.CompletedProcess(argv, 0, out, b"")

    runner = provision.Runner(dry_run=False, out=io.StringIO(), spawn=spawn)
    shutil_which = shutil.which
    try:
        shutil.which = lambda name: "/bin/true" if name == "az" else shutil_which(name)
        provision_azure.remove("prod", {}, runner, with_keys=True)
    finally:
        shutil.which = shutil_which
    deleted = [
        argv[-1].split("/providers/")[1].rsplit("/", 1)[0]
        for argv in calls
        if argv[1:3] == ["resource", "delete"]
    ]
    assert deleted == [
        "Microsoft.Web/sites", "Microsoft.Web/serverfarms", "Microsoft.Storage/storageAccounts",
        "microsoft.insights/components", "Microsoft.OperationalInsights/workspaces", "Microsoft.KeyVault/vaults",
        "microsoft.alertsmanagement/smartDetectorAlertRules",
    ]  # fmt: skip
    assert calls[0][calls[0].index("--tag") + 1] == "litefaas-stage=prod"
    # the rule is looked up by the name Azure gives it, after the component the template names
    rules = calls[1]
    assert rules[rules.index("--resource-type") + 1] == provision_azure.SMART_DETECTOR_RULES
    assert rules[rules.index("--name") + 1] == "Failure Anomalies - litefaas-prod-insights"


def test_remove_without_application_insights_finds_no_rule_and_deletes_nothing_more():
    """A stage deployed without Application Insights: the rule's lookup lists nothing, and a list
    that is not JSON is refused in the protocol's words, not a traceback."""
    answers = {"tagged": b"[]", "rules": b"[]"}
    calls = []

    def spawn(argv, **kwargs):
        calls.append(argv)
        key = "rules" if "--resource-type" in argv else "tagged"
        return subprocess.CompletedProcess(
            argv, 0, answers[key] if argv[1:3] == ["resource", "list"] else b"", b""
        )

    runner = provision.Runner(dry_run=False, out=io.StringIO(), spawn=spawn)
    shutil_which = shutil.which
    try:
        shutil.which = lambda name: "/bin/true" if name == "az" else shutil_which(name)
        provision_azure.remove("prod", {"azureFunctionApp": "lf-prod"}, runner, with_keys=False)
        assert [argv[1:3] for argv in calls] == [["resource", "list"]] * 2
        assert calls[1][calls[1].index("--name") + 1] == "Failure Anomalies - lf-prod-insights"
        answers["rules"] = b"not json"
        with pytest.raises(PackageError, match="no JSON"):
            provision_azure.remove("prod", {}, runner, with_keys=False)
    finally:
        shutil.which = shutil_which


def test_the_component_is_named_as_the_rule_lookup_expects():
    """The template names Application Insights after the app, as failure_anomalies_rule reads it."""
    variables = json.loads(provision_azure.TEMPLATE.read_text())["variables"]
    suffix = provision_azure.INSIGHTS_SUFFIX
    assert variables["insightsName"] == f"[format('{{0}}{suffix}', parameters('functionAppName'))]"


# ------------------------------------------------------------------------------- the real az parser

AZ_BATCH = r"""
import json, os, sys
from azure.cli.core import get_default_cli
results = []
for argv in json.loads(sys.stdin.readline()):
    try:
        code = get_default_cli().invoke(argv, out_file=open(os.devnull, "w"))
    except SystemExit as exc:
        code = exc.code
    sys.stderr.flush()
    os.write(2, b"\n@@END@@\n")
    results.append(code)
print(json.dumps(results))
"""


def az_python() -> str:
    first = Path(AZ).read_text(errors="replace").splitlines()[0]
    return first[2:].strip() if first.startswith("#!") and "python" in first else "python3"


@pytest.mark.skipif(
    AZ is None,
    reason="the Azure CLI is not installed: `pip install azure-cli` took 3.5 min and 656 MB here, over the "
    "test budget; install it (or set LITEFAAS_TEST_AZ) to check every az command with the real parser",
)
@NEEDS_NODE
def test_the_real_az_parser_accepts_every_command(dry_run, tmp_path):
    """The real az parser accepts every command, refusing it only for want of az login."""
    keyset = provision.read_private_keyset(dry_run["key_file"])
    runner = provision.Runner(dry_run=True, out=io.StringIO())
    params = {"azureResourceGroup": "rg-prod"}
    provision_azure.provision("prod", params, "eastus", dry_run["work"], runner, keyset, "s")
    provision_azure.provision("prod", params, "eastus", dry_run["work"], runner, None, "s")
    provision_azure.remove("prod", params, runner, with_keys=True)
    dummy = tmp_path / "dummy.json"
    dummy.write_text("[]")
    commands = []
    for item in runner.seen:
        argv = [str(dummy) if a.startswith("<0600 copy") else a for a in item.argv]
        argv = [a.replace("$DEPLOYER", "00000000-0000-0000-0000-000000000000") for a in argv]
        argv = [a.replace("$RESOURCE_IDS", "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Web/sites/a")
                for a in argv]  # fmt: skip
        argv = [a.replace("$RULE_IDS", f"/subscriptions/0/resourceGroups/rg/providers/{RULES}/Failure Anomalies - a")
                for a in argv]  # fmt: skip
        commands.append(argv)
    [zip_line] = [
        line for line in dry_run["out"].splitlines() if line.startswith("az functionapp deployment")
    ]
    commands.append(shlex.split(zip_line))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "ARM_"))}
    env |= {"AZURE_CONFIG_DIR": str(tmp_path / "az"), "AZURE_CORE_COLLECT_TELEMETRY": "false"}
    result = subprocess.run(
        [az_python(), "-c", AZ_BATCH], input=json.dumps([argv[1:] for argv in commands]) + "\n",
        capture_output=True, text=True, env=env, timeout=600, check=False, cwd=paths.ROOT,
    )  # fmt: skip
    codes = json.loads(result.stdout.strip().splitlines()[-1])
    errors = result.stderr.split("@@END@@")
    for argv, code, err in zip(commands, codes, errors, strict=False):
        assert code == 1 and "az login" in err, (argv, code, err[-400:])
    assert len(codes) == len(commands) >= 9
