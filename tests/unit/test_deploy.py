"""``litefaas deploy`` end to end through serverless.yml, osls and the local plugins, with recording
stand-ins for ``gcloud``, ``az`` and ``func`` on PATH: the exact provider commands, dry runs,
missing tools, failing tools, and private keys that must never reach a template or a command."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fixtures.requests import make_keys

from litefaas import paths
from litefaas.cli import package as package_cmd
from litefaas.errors import CommandError
from litefaas.packaging import deploy

ROOT = paths.ROOT
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None or not paths.OSLS_BIN.is_file(),
    reason="node or node_modules/osls is missing: run `npm ci` (or `make setup`)",
)

RECORDER = """#!{python}
import json, os, sys
argv = [os.path.basename(sys.argv[0]), *sys.argv[1:]]
with open(os.environ["LITEFAAS_TEST_RECORD"], "a", encoding="utf-8") as log:
    log.write(json.dumps({{"argv": argv, "cwd": os.getcwd()}}) + "\\n")
if argv[:4] == ["az", "deployment", "group", "create"]:
    print(json.dumps({{"keyVaultName": {{"value": "litefaas-dev-kv"}}, "defaultHostName": {{"value": "h.example"}}}}))
sys.exit(int(os.environ.get("LITEFAAS_TEST_EXIT", "0")))
"""
PROJECT = "demo-project"
SA = "litefaas-dev-fn@demo-project.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    return tmp_path_factory.mktemp("dist")


@pytest.fixture
def tools(tmp_path, monkeypatch):
    """A PATH of node and recording stand-ins only (never a real gcloud, az or func that this machine
    may have beside node); returns a function installing stand-ins by name."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "node").symlink_to(Path(NODE).resolve())
    record = tmp_path / "record.jsonl"
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("LITEFAAS_TEST_RECORD", str(record))
    for name in [name for name in os.environ if name.startswith("LITEFAAS_PRIVATE_KEYS")]:
        monkeypatch.delenv(name)

    def install(*names: str) -> Path:
        for name in names:
            stand_in = bin_dir / name
            stand_in.write_text(RECORDER.format(python=sys.executable))
            stand_in.chmod(0o755)
        return record

    return install


def recorded(record: Path) -> list[dict]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines()]


def run_deploy(dist: Path, work: Path, *args: str) -> int:
    return package_cmd.main(["deploy", "--out", str(dist), "--work", str(work), *args])


def gcp_command(work: Path, **changes: str) -> list[str]:
    flags = {
        "runtime": "python312",
        "region": "us-central1",
        "source": str(work / "source"),
        "entry-point": "predict",
        "memory": "512Mi",
        "timeout": "10s",
        "min-instances": "0",
        "max-instances": "100",
        "concurrency": "1",
    } | changes
    argv = ["gcloud", "functions", "deploy", changes.pop("name", "litefaas-dev-predict"), "--gen2"]
    for name in ("runtime", "region", "source", "entry-point"):
        argv.append(f"--{name}={flags[name]}")
    argv += ["--trigger-http", "--allow-unauthenticated"]
    for name in ("memory", "timeout", "min-instances", "max-instances", "concurrency", "cpu"):
        if name in flags:
            argv.append(f"--{name}={flags[name]}")
    argv.append(f"--service-account={flags.get('sa', SA)}")
    argv.append(
        f"--set-secrets=LITEFAAS_PRIVATE_KEYS={flags.get('secret', 'litefaas-dev-private-keys:latest')}"
    )
    project = flags.get("project", PROJECT)
    default_env = f"LITEFAAS_LOG_LEVEL=INFO,FUNCTION_USE_ASGI=true,GOOGLE_CLOUD_PROJECT={project}"
    argv.append(f"--set-env-vars={flags.get('env', default_env)}")
    argv.append(f"--project={flags.get('project', PROJECT)}")
    return [*argv, "--quiet"]


def azure_commands(
    work: Path, bundle: Path, app: str = "litefaas-dev", group: str = "litefaas-dev"
) -> list[list[str]]:
    target = ["--resource-group", group, "--name", app]
    template = str(paths.ROOT / "providers" / "azure" / "main.json")
    return [
        ["az", "group", "create", "--name", group, "--location", "eastus", "--tags", "litefaas-stage=dev", "--output", "none"],
        ["az", "ad", "signed-in-user", "show", "--query", "id", "--output", "tsv"],
        [
            "az", "deployment", "group", "create", "--resource-group", group, "--name", "litefaas-dev",
            "--template-file", template, "--parameters", f"@{work / 'litefaas-azure-parameters.json'}",
            "--parameters", "deployerPrincipalId=", "deployerPrincipalType=User",
            "--query", "properties.outputs", "--output", "json",
        ],
        ["az", "keyvault", "secret", "show", "--vault-name", "litefaas-dev-kv", "--name", "litefaas-dev-private-keys",
         "--query", "id", "--output", "tsv"],
        ["az", "functionapp", "deployment", "source", "config-zip", *target, "--src", str(bundle), "--build-remote", "false"],
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------- gcp


def test_gcp_deploys_with_gcloud_gen2_and_secret_manager(tools, dist, tmp_path):
    """GCP provisions APIs, account and secret, then deploys the unpacked bundle with gcloud gen2."""
    record = tools("gcloud")
    work = tmp_path / "work"
    code = run_deploy(dist, work, "--cloud", "gcp", f"--param=gcpProject={PROJECT}")
    assert code == 0
    *entries, url = recorded(record)
    assert url["argv"][1:3] == ["functions", "describe"]
    assert entries[-1] == {"argv": gcp_command(work), "cwd": str(ROOT)}
    # provisioning first: the APIs, the runtime service account, the secret, its reader
    assert [entry["argv"][1:3] for entry in entries[:-1]] == [
        ["services", "enable"],
        ["iam", "service-accounts"],
        ["secrets", "describe"],
        ["secrets", "add-iam-policy-binding"],
    ]
    assert f"--member=serviceAccount:{SA}" in entries[-2]["argv"]
    # gcloud deploys a folder: the unpacked bundle, main.py at its root
    assert (work / "source" / "main.py").is_file()
    assert (work / "source" / "requirements.txt").is_file()


def test_gcp_stage_region_and_scaling_are_parameters(tools, dist, tmp_path):
    """Stage, region, scaling, CPU, project and secret name reach the gcloud deploy command."""
    record = tools("gcloud")
    work = tmp_path / "work"
    params = ["memorySize=2048", "timeout=30", "minInstances=1", "maxInstances=5", "concurrency=8"]
    params += ["gcpCpu=1", "gcpProject=my-project", "privateKeysSecret=prod-keys"]
    argv = ["--cloud", "gcp", "--stage", "prod", "--region", "europe-west1"]
    code = run_deploy(dist, work, *argv, *[f"--param={param}" for param in params])
    assert code == 0
    expected = gcp_command(
        work,
        name="litefaas-prod-predict",
        region="europe-west1",
        memory="2048Mi",
        timeout="30s",
        **{"min-instances": "1", "max-instances": "5", "concurrency": "8", "cpu": "1"},
        project="my-project",
        secret="prod-keys:latest",
        sa="litefaas-prod-fn@my-project.iam.gserviceaccount.com",
    )
    assert recorded(record)[-2]["argv"] == expected


def test_gcp_serves_asgi_unless_wsgi_is_asked_for(tools, dist, tmp_path):
    """functions-framework's ASGI server is switched on with FUNCTION_USE_ASGI; gcpServer=wsgi leaves
    the framework's default; anything else is refused before any command runs."""
    record = tools("gcloud")
    work = tmp_path / "work"
    assert (
        run_deploy(dist, work, "--cloud", "gcp", f"--param=gcpProject={PROJECT}", "--param=gcpServer=wsgi")
        == 0
    )
    assert recorded(record)[-2]["argv"] == gcp_command(
        work, env=f"LITEFAAS_LOG_LEVEL=INFO,GOOGLE_CLOUD_PROJECT={PROJECT}"
    )
    before = len(recorded(record))
    code = run_deploy(
        dist, tmp_path / "w2", "--cloud", "gcp", f"--param=gcpProject={PROJECT}", "--param=gcpServer=x"
    )
    assert code != 0 and len(recorded(record)) == before


def test_gcp_without_gcloud_on_path_fails_clearly(tools, dist, tmp_path, capsys):
    """Without gcloud on PATH the GCP deploy exits 2 naming the missing tool, running nothing."""
    record = tools("az")  # another cloud's tool is no help
    assert shutil.which("gcloud") is None
    code = run_deploy(dist, tmp_path / "work", "--cloud", "gcp", f"--param=gcpProject={PROJECT}")
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot deploy to gcp: not on PATH: gcloud (the Google Cloud CLI" in err
    assert recorded(record) == []


def test_dry_run_prints_the_provider_commands_and_runs_none(tools, dist, tmp_path, capsys):
    """A dry run prints every provider command, from enabling APIs to the URL, and runs none."""
    record = tools()  # no gcloud needed to see what would run
    work = tmp_path / "work"
    code = run_deploy(dist, work, "--cloud", "gcp", "--dry-run", f"--param=gcpProject={PROJECT}")
    out = capsys.readouterr().out
    assert code == 0
    commands = [line for line in out.splitlines() if not line.startswith("#")]
    assert commands[-2] == deploy.Command(tuple(gcp_command(work))).shell()
    assert commands[-1].startswith("URL=$(gcloud functions describe litefaas-dev-predict --gen2")
    assert commands[0].startswith("gcloud services enable cloudfunctions.googleapis.com")
    assert recorded(record) == []


# -------------------------------------------------------------------------------------------- azure


def test_azure_deploys_with_the_azure_cli_and_a_key_vault_reference(tools, dist, tmp_path):
    """Azure runs the exact az commands: group, template, Key Vault secret, zip deploy."""
    record = tools("az", "func")
    work = tmp_path / "work"
    code = run_deploy(dist, work, "--cloud", "azure")
    assert code == 0
    bundle = dist / "litefaas-azure-py3.12-x86_64.zip"
    assert [entry["argv"] for entry in recorded(record)] == azure_commands(work, bundle)


def test_azure_publishes_with_core_tools_from_the_unpacked_app(tools, dist, tmp_path):
    """azurePublisher=func publishes the unpacked app with func, passing the parameters through."""
    record = tools("az", "func")
    work = tmp_path / "work"
    params = ["--param=azurePublisher=func", "--param=minInstances=2", "--param=azureFunctionApp=lf-prod"]
    code = run_deploy(dist, work, "--cloud", "azure", *params)
    assert code == 0
    entries = recorded(record)
    parameters = json.loads((work / "litefaas-azure-parameters.json").read_text())["parameters"]
    assert parameters["alwaysReadyInstances"] == {"value": 2}
    assert parameters["functionAppName"] == {"value": "lf-prod"}
    assert entries[-1] == {
        "argv": ["func", "azure", "functionapp", "publish", "lf-prod", "--no-build"],
        "cwd": str(work / "source"),
    }
    assert (work / "source" / "function_app.py").is_file()
    assert (work / "source" / "host.json").is_file()
    assert (work / "source" / ".python_packages" / "lib" / "site-packages" / "numpy").is_dir()


def site_packages(bundle: Path) -> set[str]:
    site = ".python_packages/lib/site-packages/"
    with zipfile.ZipFile(bundle) as archive:
        return {name[len(site) :] for name in archive.namelist() if name.startswith(site)}


def test_azure_app_insights_is_a_parameter_and_the_bundle_carries_its_exporter(tools, tmp_path):
    """azureAppInsights=true: the template's parameter, and a bundle vendoring the distro with its
    entry points; left out, neither."""
    tools("az", "func")
    dist = tmp_path / "dist"
    bundle = dist / "litefaas-azure-py3.12-x86_64.zip"
    for value in ("true", "false"):
        work = tmp_path / value
        assert run_deploy(dist, work, "--cloud", "azure", f"--param=azureAppInsights={value}") == 0
        parameters = json.loads((work / "litefaas-azure-parameters.json").read_text())["parameters"]
        assert parameters["appInsights"] == {"value": value == "true"}
        files = site_packages(bundle)
        vendored = {"azure/monitor/opentelemetry/__init__.py", "opentelemetry/sdk/trace/__init__.py"}
        assert (vendored <= files) is (value == "true")
        entry_points = {name.split("/")[0] for name in files if name.endswith("/entry_points.txt")}
        if value == "true":  # how OpenTelemetry finds its context, propagators and detectors
            for distribution in (
                "opentelemetry_api-",
                "opentelemetry_sdk-",
                "opentelemetry_resource_detector_azure-",
            ):
                assert any(name.startswith(distribution) for name in entry_points), distribution
        assert not any(name.startswith(("numpy-", "cryptography-")) for name in entry_points)


def test_app_insights_asked_for_by_serverless_yml_itself_gets_a_bundle_with_its_exporter(
    tools, tmp_path, monkeypatch
):
    """Not given by --param: serverless.yml's own value (here from its environment variable) is
    what the template gets, and the bundle is built again to match it, its steps on the progress."""
    tools("az", "func")
    monkeypatch.setenv("LITEFAAS_AZURE_APP_INSIGHTS", "true")
    shown: list[str] = []
    with_progress = package_cmd._with_progress

    def recorded_progress(label, work):
        return with_progress(label, lambda step: work(lambda text: (shown.append(text), step(text))))

    monkeypatch.setattr(package_cmd, "_with_progress", recorded_progress)
    dist, work = tmp_path / "dist", tmp_path / "work"
    assert run_deploy(dist, work, "--cloud", "azure") == 0
    rebuilt = shown.index("serverless.yml sets azureAppInsights=true: the bundle built again")
    assert shown[-1] == "packaged again" and rebuilt < len(shown) - 2  # the bundle's own steps between
    parameters = json.loads((work / "litefaas-azure-parameters.json").read_text())["parameters"]
    assert parameters["appInsights"] == {"value": True}
    assert "azure/monitor/opentelemetry/__init__.py" in site_packages(
        dist / "litefaas-azure-py3.12-x86_64.zip"
    )


def test_osls_alone_builds_the_app_insights_bundle_the_parameter_asks_for(tmp_path):
    """`osls package` with azureAppInsights=true (no bundle given) runs `litefaas package --app-insights`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LITEFAAS_")}
    env |= {"CLOUD": "azure", "SLS_TELEMETRY_DISABLED": "1", "LITEFAAS_PYTHON": sys.executable}
    env["LITEFAAS_DIST"] = str(tmp_path / "dist")
    argv = [NODE, str(paths.OSLS_BIN), "package", "--package", str(tmp_path / "work")]

    def package(value: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*argv, f"--param=azureAppInsights={value}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    result = package("true")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "--app-insights" in result.stdout + result.stderr
    assert "azure/monitor/opentelemetry/__init__.py" in site_packages(
        tmp_path / "dist" / "litefaas-azure-py3.12-x86_64.zip"
    )
    refused = package("yes")
    assert refused.returncode != 0
    assert "azureAppInsights must be true or false, not yes" in refused.stdout + refused.stderr


def test_azure_app_insights_must_be_true_or_false(tools, tmp_path, capsys):
    """A value other than true or false is refused before anything is built or run."""
    record = tools("az")
    code = run_deploy(
        tmp_path / "dist", tmp_path / "work", "--cloud", "azure", "--param=azureAppInsights=yes"
    )
    assert code == 2
    assert "--param azureAppInsights must be true or false, not 'yes'" in capsys.readouterr().err
    assert recorded(record) == [] and not (tmp_path / "dist").exists()


def test_azure_with_func_needs_func_on_path(tools, dist, tmp_path, capsys):
    """azurePublisher=func without func on PATH exits 2 naming it, running nothing."""
    record = tools("az")
    code = run_deploy(dist, tmp_path / "work", "--cloud", "azure", "--param=azurePublisher=func")
    assert code == 2
    assert "not on PATH: func (Azure Functions Core Tools" in capsys.readouterr().err
    assert recorded(record) == []


def test_a_failing_provider_command_fails_the_deploy(tools, dist, tmp_path, monkeypatch, capsys):
    """A provider command that fails stops the deploy at once with exit 2 and its exit code."""
    record = tools("az")
    monkeypatch.setenv("LITEFAAS_TEST_EXIT", "3")
    code = run_deploy(dist, tmp_path / "work", "--cloud", "azure")
    assert code == 2
    assert "az group create failed (exit code 3)" in capsys.readouterr().err
    assert len(recorded(record)) == 1  # stopped at the first failure


# ---------------------------------------------------------------------------------------------- aws


def test_aws_dry_run_packages_offline_and_prints_the_osls_deploy(tools, dist, tmp_path, capsys):
    """An AWS dry run packages offline and prints the secret check and the osls deploy command."""
    work = tmp_path / "work"
    code = run_deploy(dist, work, "--cloud", "aws", "--arch", "x86_64", "--stage", "prod", "--dry-run")
    out = capsys.readouterr().out
    assert code == 0
    assert (work / "cloudformation-template-update-stack.json").is_file()
    [command] = [line for line in out.splitlines() if line.startswith("CLOUD=aws")]
    assert command.startswith("CLOUD=aws node ")
    assert "boto3 secretsmanager.describe_secret(SecretId='litefaas-prod-private-keys')" in out
    assert f"deploy --package {work} --stage prod --param=python=3.12 --param=architecture=x86_64" in command


def test_a_private_key_in_the_template_is_refused(tools, dist, tmp_path, monkeypatch, capsys):
    # GIVEN key material that reaches the function's environment (here through a pass-through variable)
    monkeypatch.setenv("LITEFAAS_NUM_THREADS", make_keys().private_json)
    code = run_deploy(dist, tmp_path / "work", "--cloud", "aws", "--dry-run")
    captured = capsys.readouterr()
    # THEN the deploy stops before any provider command, naming the template, not the key
    assert code == 2
    assert "refusing to deploy: private key material found in " in captured.err
    assert "cloudformation-template-update-stack.json (litefaas private key set)" in captured.err
    assert "CLOUD=aws" not in captured.out


def test_a_private_key_in_a_provider_command_is_refused(tools, dist, tmp_path, monkeypatch, capsys):
    """A private key in a provider command stops the deploy before any command runs."""
    record = tools("gcloud")
    monkeypatch.setenv("LITEFAAS_LOG_LEVEL", make_keys().private_json)
    code = run_deploy(dist, tmp_path / "work", "--cloud", "gcp", f"--param=gcpProject={PROJECT}")
    assert code == 2
    assert "a private key appears in the gcloud command" in capsys.readouterr().err
    assert recorded(record) == []


def test_unknown_cloud_and_bad_parameters(capsys):
    """An unknown cloud exits 2; parameters must be NAME=VALUE, and architecture goes by --arch."""
    with pytest.raises(SystemExit) as exited:
        package_cmd.main(["deploy", "--cloud", "oracle"])
    assert exited.value.code == 2
    assert "invalid choice: 'oracle'" in capsys.readouterr().err
    with pytest.raises(CommandError, match="expected NAME=VALUE"):
        package_cmd.parse_params(["memorySize"])
    with pytest.raises(CommandError, match="use --arch instead"):
        package_cmd.parse_params(["architecture=arm64"])
    assert package_cmd.parse_params(["memorySize=1024", "privateKeysSecret=a=b"]) == {
        "memorySize": "1024",
        "privateKeysSecret": "a=b",
    }


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"snapStart": "true", "provisionedConcurrency": "2"}, "provisioned concurrency"),
        ({"snapStart": "true", "ephemeralStorageSize": "1024"}, "at most 512 MB"),
        ({"snapStart": "true", "fileSystemConfig": "arn:aws:elasticfilesystem:x"}, "EFS"),
        ({"snapStart": "yes"}, "true or false"),
    ],
)
def test_snapstart_refuses_what_lambda_does_not_allow_with_it(params, says):
    with pytest.raises(deploy.PackageError, match=says):
        deploy.check_snapstart(params)


def test_snapstart_on_or_off_within_its_limits_passes():
    deploy.check_snapstart({"snapStart": "true", "ephemeralStorageSize": "512"})
    deploy.check_snapstart(
        {"snapStart": "false", "provisionedConcurrency": "4", "ephemeralStorageSize": "2048"}
    )
    deploy.check_snapstart({})


def test_gcp_startup_cpu_boost_is_set_on_the_functions_service(tools, dist, tmp_path):
    record = tools("gcloud")
    work = tmp_path / "work"
    code = run_deploy(
        dist, work, "--cloud", "gcp", f"--param=gcpProject={PROJECT}", "--param=startupCpuBoost=true"
    )
    assert code == 0
    commands = [entry["argv"] for entry in recorded(record)]
    deployed = commands.index(gcp_command(work))
    assert commands[deployed + 1] == [
        "gcloud", "run", "services", "update", "litefaas-dev-predict", "--region=us-central1", "--cpu-boost",
        f"--project={PROJECT}", "--quiet",
    ]  # fmt: skip
    before = len(recorded(record))
    code = run_deploy(
        dist, tmp_path / "w2", "--cloud", "gcp", f"--param=gcpProject={PROJECT}", "--param=startupCpuBoost=2"
    )
    assert code != 0 and len(recorded(record)) == before
