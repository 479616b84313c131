"""``litefaas package`` and ``litefaas deploy``: a cloud's bundle, and the deploy through serverless.yml.

The Serverless plugins in ``serverless_plugins/`` call ``python -m litefaas.cli.package package …``,
so this module also runs on its own, with the same arguments and exit codes as the ``litefaas`` command.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from litefaas.cli.base import Commands
from litefaas.errors import CommandError
from litefaas.packaging.targets import ARCHITECTURES, CLOUDS, PYTHON_VERSIONS

if TYPE_CHECKING:
    from rich.console import Console

    from litefaas.packaging.bundle import Bundle, Step

_PARAM = re.compile(r"[A-Za-z][A-Za-z0-9]*=.+")
T = TypeVar("T")


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cloud", required=True, choices=CLOUDS, help="the cloud the bundle is for")
    parser.add_argument(
        "--arch",
        choices=ARCHITECTURES,
        default="x86_64",
        help="CPU (arm64: AWS Graviton only; default x86_64)",
    )
    parser.add_argument(
        "--python", choices=PYTHON_VERSIONS, default="3.12", help="runtime Python (default 3.12)"
    )
    parser.add_argument("--out", type=Path, help="folder for the bundle (default dist/)")


def register(commands: Commands) -> None:
    """The ``package``, ``deploy``, ``remove`` and ``check`` subcommands."""
    package = commands.add_parser(
        "package",
        help="build a cloud's function bundle (zip) from the target's wheels",
        description="Fetch the runtime wheels for the target (cp312 manylinux, x86_64 or arm64) with pip's "
        "cross-platform options (cached under build/wheels), slim them, add core/, the cloud's entrypoint "
        "and the model artifact, refuse any private key, and write dist/litefaas-CLOUD-pyX.Y-ARCH.zip.",
    )
    _add_target_options(package)
    package.add_argument("--model", type=Path, help="model artifact folder (default: the committed one)")
    package.add_argument(
        "--verify",
        action="store_true",
        help="then answer an encrypted request with the bundle alone in an isolated pythonX.Y -I -S, and"
        " as its platform runs it: aws under awslambdaric in Lambda's read-only sandbox (where a mount"
        " namespace is allowed), gcp from a fresh virtualenv of its requirements.txt under"
        " functions-framework, azure indexed as Flex's worker indexes it",
    )
    package.add_argument(
        "--app-insights",
        action="store_true",
        help="azure: vendor azure-monitor-opentelemetry too, for the function to export its spans and"
        " metrics to Application Insights where APPLICATIONINSIGHTS_CONNECTION_STRING is set",
    )
    package.set_defaults(handler=run_package)

    deploy = commands.add_parser(
        "deploy",
        help="package and deploy with serverless.yml (osls; gcloud or the Azure CLI for gcp and azure)",
        description="Build the bundle, run `osls package` with CLOUD set (offline), scan the template or "
        "deploy plan it writes for private keys, then run the provider's deployment: CloudFormation "
        "through osls (aws), `gcloud functions deploy --gen2` (gcp), the Azure CLI or Core Tools (azure).",
    )
    _add_target_options(deploy)
    deploy.add_argument("--stage", default="dev", help="stage (default dev)")
    deploy.add_argument("--region", help="region (default: the provider file's)")
    deploy.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a serverless.yml parameter, e.g. memorySize=1024, provisionedConcurrency=2 (repeatable)",
    )
    deploy.add_argument(
        "--work", type=Path, help="where osls writes the template or plan (default build/deploy/CLOUD-STAGE)"
    )
    deploy.add_argument(
        "--dry-run",
        action="store_true",
        help="package and scan, then print every provider command (and Azure's template) instead",
    )
    deploy.add_argument(
        "--keys", type=Path, help="push this private key set (0600) to the cloud's secret store first"
    )
    deploy.add_argument(
        "--check",
        action="store_true",
        help="then smoke-test the live function (/health, /keys, a sealed prediction)",
    )
    deploy.set_defaults(handler=run_deploy)

    remove = commands.add_parser(
        "remove",
        help="delete what `litefaas deploy` created (the keys' secret only with --with-keys)",
        description="AWS: `osls remove` (the CloudFormation stack). GCP: the function and its runtime "
        "service account. Azure: the resources the template made (function app, plan, storage). The "
        "private keys' secret (and Azure's Key Vault) stay unless --with-keys.",
    )
    remove.add_argument("--cloud", required=True, choices=CLOUDS)
    remove.add_argument("--stage", default="dev", help="stage (default dev)")
    remove.add_argument("--region", help="region (default: the provider file's)")
    remove.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="as for deploy")
    remove.add_argument("--with-keys", action="store_true", help="delete the private keys' secret too")
    remove.add_argument("--dry-run", action="store_true", help="print the commands instead")
    remove.set_defaults(handler=run_remove)

    check = commands.add_parser(
        "check",
        help="smoke-test a live function: /health, /keys, one sealed prediction against the local model",
    )
    check.add_argument("--url", action="append", required=True, help="the function's base URL (repeatable)")
    check.add_argument(
        "--model", type=Path, help="local model artifact to compare with (default: the committed one)"
    )
    check.set_defaults(handler=run_check)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _with_progress(label: str, work: Callable[[Step], T]) -> T:
    """Run ``work(step)`` under a transient spinner on stderr showing each step."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from litefaas.cli.console import make_console

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=make_console(sys.stderr), transient=True) as progress:
        task = progress.add_task(label, total=None)
        return work(lambda text: progress.update(task, description=f"{label}: {text}"))


def run_package(args: argparse.Namespace) -> int:
    """Build the bundle with a progress display; print what it weighs."""
    from litefaas.cli.console import make_console
    from litefaas.packaging.bundle import DEFAULT_DIST, DEFAULT_MODEL, build_bundle
    from litefaas.packaging.targets import AWS_TARGET_UNZIPPED, AWS_TARGET_ZIPPED, Target

    target = Target(args.cloud, args.arch, args.python)
    bundle = _with_progress(
        target.bundle_name,
        lambda step: build_bundle(
            target,
            args.out or DEFAULT_DIST,
            model_dir=args.model or DEFAULT_MODEL,
            step=step,
            app_insights=args.app_insights,
        ),
    )
    out = make_console()
    out.print(
        f"{bundle.path}  {_mb(bundle.zipped_bytes)} zipped, {_mb(bundle.unzipped_bytes)} unzipped, "
        f"{bundle.files} files ({bundle.seconds:.1f} s)"
    )
    if target.cloud == "aws":
        within = bundle.zipped_bytes <= AWS_TARGET_ZIPPED and bundle.unzipped_bytes <= AWS_TARGET_UNZIPPED
        verdict = "[green]within[/]" if within else "[red]over[/]"
        targets = f"{_mb(AWS_TARGET_ZIPPED)} zipped and {_mb(AWS_TARGET_UNZIPPED)} unzipped"
        out.print(f"{verdict} the targets of {targets}")
    if args.verify:
        _verify(bundle, out)
    return 0


def _verify(bundle: Bundle, out: Console) -> None:
    from litefaas.packaging.proof import verify_bundle

    report = verify_bundle(bundle.path, bundle.target)
    out.print(
        f"verified: {report.rows} encrypted rows answered by {bundle.path.name} alone, in Python "
        f"{report.python} -I -S ({report.interpreter}); outputs equal the local model's"
    )
    if bundle.target.cloud == "gcp":
        out.print("verified: and as the buildpack runs it (a fresh virtualenv of its requirements.txt)")
    if bundle.target.cloud == "azure":
        out.print("verified: and laid out and indexed as Flex Consumption's worker indexes it")
    if report.lambda_runtime_s is not None:
        out.print(
            f"verified: and under awslambdaric as Lambda runs it (read-only, nobody, no HOME, Lambda's"
            f" environment): first answer {report.lambda_runtime_s:.2f} s after the process started"
        )


def parse_params(items: Sequence[str]) -> dict[str, str]:
    """``NAME=VALUE`` items; python and architecture come from --python and --arch."""
    from litefaas.packaging.deploy import RESERVED_PARAMS

    params = {}
    for item in items:
        if not _PARAM.fullmatch(item):
            raise CommandError(f"--param {item!r}: expected NAME=VALUE")
        name, _, value = item.partition("=")
        if name in RESERVED_PARAMS:
            raise CommandError(f"--param {name}: use --{'arch' if name == 'architecture' else name} instead")
        params[name] = value
    return params


def run_deploy(args: argparse.Namespace) -> int:
    """``litefaas deploy``: see :mod:`litefaas.packaging.deploy`."""
    from litefaas.cli.console import make_console
    from litefaas.packaging import deploy
    from litefaas.packaging.bundle import DEFAULT_DIST
    from litefaas.packaging.targets import Target

    deployment = deploy.Deployment(
        target=Target(args.cloud, args.arch, args.python),
        stage=args.stage,
        region=args.region,
        params=parse_params(args.param),
        dist=args.out or DEFAULT_DIST,
        work=args.work,
    )
    from litefaas.packaging.provision import Runner, read_private_keyset

    keyset = read_private_keyset(args.keys) if args.keys else None
    deploy.check_toolchain(args.cloud)
    cli = {"gcp": "gcloud", "azure": "az"}.get(args.cloud)
    if cli and not args.dry_run:
        deploy.require_tools(deploy.missing_tools([deploy.Command((cli,))]), args.cloud)
    bundle = _with_progress(deployment.target.bundle_name, lambda step: deploy.bundle_for(deployment, step))
    needles = _needles(keyset)
    runner = Runner(dry_run=args.dry_run, needles=needles)
    if args.dry_run:
        print(
            f"# {bundle.path.name}: {bundle.zipped_bytes:,} bytes zipped, {bundle.unzipped_bytes:,} unzipped"
        )
        print(f"# {args.cloud} deployment, stage {args.stage}: every command, in order")
    deployment = deploy.prepare(deployment, runner)
    built = bundle
    bundle, commands = _with_progress(  # a bundle built again shows its steps here
        f"osls package (CLOUD={args.cloud}, stage {args.stage})",
        lambda step: deploy.package(deployment, built, step),
    )
    if args.dry_run and bundle is not built:
        print(
            f"# serverless.yml's azureAppInsights: built again, {bundle.zipped_bytes:,} bytes zipped,"
            f" {bundle.unzipped_bytes:,} unzipped"
        )
    if cli and not args.dry_run:
        deploy.require_tools(deploy.missing_tools(commands), args.cloud)
    provisioned = deploy.provision(deployment, runner, keyset)
    if args.dry_run:
        print(f"# {args.cloud}: the code (osls deploy runs these)")
        for command in commands:
            print(f"CLOUD=aws {command.shell()}" if args.cloud == "aws" else command.shell())
        urls = deploy.function_urls(deployment, provisioned, runner)
        print("# then the function answers at: " + ", ".join(f"{k} {v}" for k, v in urls.items()))
        if args.cloud == "azure":
            _print_azure_template(deployment)
        return 0
    deploy.osls_deploy(deployment, bundle, commands)
    urls = deploy.function_urls(deployment, provisioned, runner)
    out = make_console()
    for name, url in urls.items():
        out.print(f"{args.cloud} {name}: {url}")
    if args.check:
        for url in urls.values():
            _smoke(url, None, out)
    return 0


def _needles(keyset: object) -> list[bytes]:
    """Encodings of the key set's private keys (and the environment's): never in a command's argv."""
    from litefaas.packaging.secret_scan import known_private_keys

    needles = known_private_keys()
    if keyset is not None:
        needles += known_private_keys({"LITEFAAS_PRIVATE_KEYS": keyset.text})  # type: ignore[attr-defined]
    return needles


def _print_azure_template(deployment: object) -> None:
    from litefaas.packaging.provision_azure import PARAMETERS_FILE, TEMPLATE

    package_dir = deployment.package_dir  # type: ignore[attr-defined]
    print(f"# --- {TEMPLATE.relative_to(TEMPLATE.parents[2])} (az deployment group create --template-file)")
    print(TEMPLATE.read_text(encoding="utf-8").rstrip())
    print(f"# --- {PARAMETERS_FILE} (from serverless.yml)")
    print((package_dir / PARAMETERS_FILE).read_text(encoding="utf-8").rstrip())


def _smoke(url: str, model: Path | None, out: Console) -> None:
    from litefaas.packaging.smoke import check

    out.print(f"checking {url}")
    report = check(url, model_dir=model)
    for line in report.lines:
        out.print(f"  {line}")


def run_check(args: argparse.Namespace) -> int:
    """``litefaas check --url …``: see :mod:`litefaas.packaging.smoke`."""
    from litefaas.cli.console import make_console

    out = make_console()
    for url in args.url:
        _smoke(url, args.model, out)
    out.print("[green]ok[/]")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """``litefaas remove``: see :func:`litefaas.packaging.deploy.remove`."""
    from litefaas.packaging import deploy
    from litefaas.packaging.provision import Runner
    from litefaas.packaging.targets import Target

    deployment = deploy.Deployment(
        target=Target(args.cloud), stage=args.stage, region=args.region, params=parse_params(args.param)
    )
    deploy.remove(deployment, Runner(dry_run=args.dry_run), args.with_keys)
    if not args.with_keys:
        print(
            f"# kept: the private keys' secret (litefaas remove --cloud {args.cloud} --with-keys deletes it)"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m litefaas.cli.package package|deploy …``: the two commands without the rest of the CLI."""
    from litefaas.cli.base import run

    root = argparse.ArgumentParser(prog="litefaas")
    register(root.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return run(root, argv)


if __name__ == "__main__":
    sys.exit(main())
