"""Every gcloud command a GCP deploy, keys push and remove would run, given to the real gcloud on this
machine with an empty configuration: each must be refused only for want of a login (exit 1, "no
active account"), never by the argument parser (exit 2). The commands run in one gcloud process
(its CLI loaded once), so the whole set costs one start-up. Key material only ever on stdin."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fixtures.requests import make_keys

from litefaas.cli import package as package_cmd
from litefaas.packaging import provision, provision_gcp
from litefaas.packaging.secret_scan import known_private_keys, scan_bytes

GCLOUD = shutil.which("gcloud")
pytestmark = pytest.mark.skipif(GCLOUD is None, reason="the Google Cloud CLI (gcloud) is not installed")
PROJECT = "demo-project-123"
NOT_LOGGED_IN = "You do not currently have an active account selected"

BATCH = r"""
import contextlib, io, json, os, sys
lib = sys.argv[1]
sys.path[:0] = [os.path.join(lib, "third_party"), lib]
from googlecloudsdk import gcloud_main
cli = gcloud_main.CreateCLI([])
results = []
for argv in json.loads(sys.stdin.readline()):
    sys.stdin = io.TextIOWrapper(io.BytesIO(b"[]"))
    code = 0
    try:
        cli.Execute(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:
        code = repr(exc)
    sys.stderr.flush(); sys.__stderr__.flush()
    os.write(2, b"\n@@END@@\n")
    results.append(code)
print(json.dumps(results))
"""


def gcloud_lib() -> tuple[str, Path]:
    root = Path(GCLOUD).resolve().parent.parent
    bundled = root / "platform" / "bundledpythonunix" / "bin" / "python3"
    return str(bundled if bundled.is_file() else shutil.which("python3")), root / "lib"


def parse_all(commands: list[list[str]], tmp_path: Path) -> list[tuple[object, str]]:
    """Run each command (without its leading ``gcloud``) in one gcloud process; (exit, stderr) each."""
    python, lib = gcloud_lib()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSDK_", "GOOGLE_"))}
    env |= {
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud-config"),
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
        "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
    }
    script = tmp_path / "batch.py"
    script.write_text(BATCH)
    result = subprocess.run(
        [python, str(script), str(lib)],
        input=json.dumps([argv[1:] for argv in commands]) + "\n",
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    codes = json.loads(result.stdout.strip().splitlines()[-1])
    errors = result.stderr.split("@@END@@")[: len(codes)]
    return list(zip(codes, errors, strict=True))


@pytest.fixture(scope="module")
def commands(tmp_path_factory) -> list[list[str]]:
    """Every gcloud command: deploy's provisioning (both branches), the deploy itself from the
    plugin's plan, the URL, keys push, and remove --with-keys."""
    tmp = tmp_path_factory.mktemp("gcp")
    keys = tmp / "keys.json"
    keys.write_text(make_keys().private_json)
    keys.chmod(0o600)
    keyset = provision.read_private_keyset(keys)
    runner = provision.Runner(dry_run=True, out=io.StringIO())
    provision_gcp.provision("dev", PROJECT, runner, keyset, "litefaas-dev-private-keys")
    provision_gcp.provision("dev", PROJECT, runner, None, "litefaas-dev-private-keys")
    provision_gcp.function_url("dev", "us-central1", PROJECT, runner)
    provision_gcp.remove("dev", "us-central1", PROJECT, runner, "litefaas-dev-private-keys", with_keys=True)
    seen = [list(item.argv) for item in runner.seen]
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(out):
        code = package_cmd.main(
            ["deploy", "--cloud", "gcp", "--work", str(tmp / "work"), "--dry-run",
             f"--param=gcpProject={PROJECT}", "--param=minInstances=1", "--param=gcpCpu=1"]
        )  # fmt: skip
    assert code == 0
    [deploy_line] = [
        line for line in out.getvalue().splitlines() if line.startswith("gcloud functions deploy")
    ]
    import shlex

    return [*seen, shlex.split(deploy_line)]


def test_every_command_is_covered(commands):
    """The commands cover every gcloud verb used, and key pushes read the key from stdin."""
    verbs = {" ".join(argv[1:3]) if argv[1] != "iam" else " ".join(argv[1:4]) for argv in commands}
    assert verbs == {
        "services enable", "iam service-accounts describe", "iam service-accounts create",
        "iam service-accounts delete", "secrets describe", "secrets create", "secrets versions",
        "secrets add-iam-policy-binding", "secrets delete", "functions describe", "functions delete",
        "functions deploy",
    }  # fmt: skip
    # key material goes on stdin (--data-file=-), never in an argument
    pushes = [argv for argv in commands if argv[1:3] in (["secrets", "create"], ["secrets", "versions"])]
    assert pushes and all("--data-file=-" in argv for argv in pushes)


def test_the_real_gcloud_parser_accepts_every_command(commands, tmp_path):
    """The real gcloud parser accepts every command, refusing it only for want of a login."""
    results = parse_all(commands, tmp_path)
    for argv, (code, err) in zip(commands, results, strict=True):
        assert code == 1 and NOT_LOGGED_IN in err, (argv, code, err[-400:])


def test_the_parser_check_tells_a_bad_argument_from_a_missing_login(tmp_path):
    """A misspelt flag exits 2 in the parser, unlike a missing login's exit 1."""
    [(code, err)] = parse_all([["gcloud", "functions", "deploy", "f", "--gen2", "--memroy=512Mi"]], tmp_path)
    assert code == 2 and "unrecognized arguments" in err


def test_key_material_never_reaches_the_printed_plan(tmp_path):
    """A dry-run keys push prints no key material, only a redirect from the key file."""
    keys = make_keys()
    path = tmp_path / "keys.json"
    path.write_text(keys.private_json)
    path.chmod(0o600)
    out = io.StringIO()
    runner = provision.Runner(dry_run=True, out=out)
    provision_gcp.push_keys(provision.read_private_keyset(path), "s", PROJECT, runner)
    needles = known_private_keys({"LITEFAAS_PRIVATE_KEYS": keys.private_json})
    assert not scan_bytes(out.getvalue().encode(), needles)
    assert "--data-file=- --project=demo-project-123 < keys.json" in out.getvalue()
