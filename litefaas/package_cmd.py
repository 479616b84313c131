"""``litefaas package`` and ``litefaas deploy``: a cloud's bundle, and the deploy through serverless.yml.

The Serverless plugins in ``serverless_plugins/`` call ``python -m litefaas.package_cmd package …``,
so this module also runs on its own, with the same arguments and exit codes as the ``litefaas`` command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from litefaas.cli import CommandError

if TYPE_CHECKING:
    from rich.console import Console

    from litefaas.package import Bundle

CLOUDS = ("aws", "gcp", "azure")
ARCHITECTURES = ("x86_64", "arm64")
PYTHON_VERSIONS = ("3.12", "3.13")
AWS_TARGET_ZIPPED = 25 * 1000 * 1000
AWS_TARGET_UNZIPPED = 80 * 1000 * 1000


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


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``package`` and ``deploy`` subcommands."""
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
        help="then answer an encrypted request with the bundle alone in an isolated pythonX.Y -I -S",
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
        "--dry-run", action="store_true", help="package and scan, then print the provider commands instead"
    )
    deploy.set_defaults(handler=run_deploy)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def run_package(args: argparse.Namespace) -> int:
    """Build the bundle with a progress display; print what it weighs."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from litefaas import package
    from litefaas.console import make_console

    console = make_console(sys.stderr)
    try:
        target = package.Target(args.cloud, args.arch, args.python)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(f"{target.bundle_name}", total=None)
            bundle = package.build_bundle(
                target,
                args.out or package.DEFAULT_DIST,
                model_dir=args.model or package.DEFAULT_MODEL,
                step=lambda text: progress.update(task, description=f"{target.bundle_name}: {text}"),
            )
    except package.PackageError as exc:
        raise CommandError(str(exc)) from None
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
    from litefaas import package

    try:
        report = package.verify_bundle(bundle.path, bundle.target)
    except package.PackageError as exc:
        raise CommandError(str(exc)) from None
    out.print(
        f"verified: {report.rows} encrypted rows answered by {bundle.path.name} alone, in Python "
        f"{report.python} -I -S ({report.interpreter}); outputs equal the local model's"
    )


def run_deploy(args: argparse.Namespace) -> int:
    from litefaas import deploy

    return deploy.run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m litefaas.package_cmd package|deploy …``: the two commands without the rest of the CLI."""
    from litefaas.cli import run

    root = argparse.ArgumentParser(prog="litefaas")
    register(root.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return run(root, argv)


if __name__ == "__main__":
    sys.exit(main())
