"""``litefaas deploy``: one cloud's deployment through serverless.yml, checked before anything leaves.

1. build the bundle (:mod:`litefaas.package`; reused when its inputs have not changed);
2. ``osls package`` with ``CLOUD`` set, into ``build/deploy/<cloud>-<stage>``: offline, no credentials.
   It writes the CloudFormation template (aws) or the deploy plan of provider commands (gcp, azure,
   from the plugins in ``serverless_plugins/``);
3. scan what it wrote for private keys, and refuse if there is any;
4. ``osls deploy --package <that folder>``: CloudFormation through osls (aws), or the plan's
   ``gcloud`` / ``az`` / ``func`` commands (gcp, azure). ``--dry-run`` prints these commands instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from litefaas.cli import CommandError
from litefaas.package import (
    DEFAULT_DIST,
    ROOT,
    Bundle,
    PackageError,
    Target,
    build_bundle,
    refuse_findings,
    scan_paths,
)

OSLS = ROOT / "node_modules" / "osls" / "bin" / "serverless.js"
DEPLOY_ROOT = ROOT / "build" / "deploy"
INSTALL_HINTS = {
    "node": "Node.js 20 or later",
    "gcloud": "the Google Cloud CLI: https://cloud.google.com/sdk/docs/install",
    "az": "the Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli",
    "func": "Azure Functions Core Tools: https://learn.microsoft.com/azure/azure-functions/functions-run-local",
}
_PARAM = re.compile(r"[A-Za-z][A-Za-z0-9]*=.+")
_RESERVED_PARAMS = {"python", "architecture"}


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


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """``NAME=VALUE`` items; python and architecture come from --python and --arch."""
    params = {}
    for item in items:
        if not _PARAM.fullmatch(item):
            raise CommandError(f"--param {item!r}: expected NAME=VALUE")
        name, _, value = item.partition("=")
        if name in _RESERVED_PARAMS:
            raise CommandError(f"--param {name}: use --{'arch' if name == 'architecture' else name} instead")
        params[name] = value
    return params


def osls_argv(
    command: str, package_dir: Path, args: argparse.Namespace, params: Mapping[str, str]
) -> list[str]:
    """``node osls <command> --package DIR --stage S [--region R] --param …`` for this deployment."""
    argv = ["node", str(OSLS), command, "--package", str(package_dir), "--stage", args.stage]
    if args.region:
        argv += ["--region", args.region]
    every = {"python": args.python, "architecture": args.arch, **params}
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
        raise CommandError(f"osls package wrote no readable deploy plan at {path}") from None


def missing_tools(commands: Sequence[Command]) -> list[str]:
    """The programs of ``commands`` that are not on PATH."""
    tools = dict.fromkeys(command.argv[0] for command in commands)
    return [tool for tool in tools if shutil.which(tool) is None]


def _require(tools: Sequence[str], cloud: str) -> None:
    if tools:
        listed = "; ".join(f"{tool} ({INSTALL_HINTS.get(tool, 'install it')})" for tool in tools)
        raise CommandError(
            f"cannot deploy to {cloud}: not on PATH: {listed}. `--dry-run` shows the commands without them"
        )


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _bundle(args: argparse.Namespace) -> Bundle:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from litefaas.console import make_console

    target = Target(args.cloud, args.arch, args.python)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=make_console(sys.stderr), transient=True) as progress:
        task = progress.add_task(target.bundle_name, total=None)
        return build_bundle(
            target,
            args.out or DEFAULT_DIST,
            step=lambda text: progress.update(task, description=f"{target.bundle_name}: {text}"),
        )


def _osls_package(
    args: argparse.Namespace, bundle: Bundle, package_dir: Path, params: Mapping[str, str]
) -> None:
    from rich.console import Console

    from litefaas.console import make_console

    console: Console = make_console(sys.stderr)
    shutil.rmtree(package_dir, ignore_errors=True)
    argv = osls_argv("package", package_dir, args, params)
    argv[0] = shutil.which("node") or "node"
    with console.status(f"osls package (CLOUD={args.cloud}, stage {args.stage})"):
        result = subprocess.run(  # noqa: S603 - argv built here
            argv, cwd=ROOT, env=osls_env(args.cloud, bundle), capture_output=True, text=True, check=False
        )
    if result.returncode != 0:
        raise CommandError(f"osls package failed:\n{_tail(result.stdout + result.stderr)}")


def scan_package(package_dir: Path) -> None:
    """Refuse a template, state file or deploy plan that holds private key material."""
    written = [path for path in package_dir.iterdir() if path.is_file()]
    refuse_findings(scan_paths(written, base=package_dir), "to deploy")


def run(args: argparse.Namespace) -> int:
    """``litefaas deploy``: see the module's docstring."""
    params = parse_params(args.param)
    if shutil.which("node") is None:
        _require(["node"], args.cloud)
    if not OSLS.is_file():
        raise CommandError("node_modules/osls is missing: run `npm ci` (or `make setup`) first")
    try:
        bundle = _bundle(args)
        package_dir = args.work or DEPLOY_ROOT / f"{args.cloud}-{args.stage}"
        _osls_package(args, bundle, package_dir, params)
        scan_package(package_dir)
    except PackageError as exc:
        raise CommandError(str(exc)) from None
    deploy = Command(tuple(osls_argv("deploy", package_dir, args, params)), None)
    commands = [deploy] if args.cloud == "aws" else read_plan(package_dir, args.cloud)
    if args.dry_run:
        print(
            f"# {bundle.path.name}: {bundle.zipped_bytes:,} bytes zipped, {bundle.unzipped_bytes:,} unzipped"
        )
        print(f"# {args.cloud} deployment, stage {args.stage}: the provider commands")
        for command in commands:
            print(f"CLOUD=aws {command.shell()}" if args.cloud == "aws" else command.shell())
        return 0
    _require(missing_tools(commands) if args.cloud != "aws" else [], args.cloud)
    env = osls_env(args.cloud, bundle)
    node = shutil.which("node") or "node"
    result = subprocess.run([node, *deploy.argv[1:]], cwd=ROOT, env=env, check=False)  # noqa: S603 - argv built here
    if result.returncode != 0:
        raise CommandError(
            f"the {args.cloud} deployment failed (osls deploy exited with {result.returncode})"
        )
    return 0
