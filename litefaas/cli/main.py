"""The ``litefaas`` console script: one parser, every command group registering its own subcommands.

Tool errors (:class:`~litefaas.errors.ToolError`, and the model pipeline's ``BuildError``) become
``litefaas COMMAND: message`` and exit code 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from litefaas.cli import bench, build, calls, demo, inspect, keys, package, partition, serve, simulate
from litefaas.cli.base import EXIT_USAGE, run

COMMAND_GROUPS = (build, inspect, partition, keys, calls, serve, package, bench, simulate, demo)
"""In the order ``litefaas --help`` lists them."""


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="litefaas",
        description="Serve compact LiteRT models from serverless functions on AWS, GCP and Azure, "
        "with end-to-end encrypted inputs and outputs.",
    )
    from litefaas import __version__

    root.add_argument("--version", action="version", version=f"litefaas {__version__}")
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``litefaas`` console script."""
    return run(parser(), argv)


__all__ = ["EXIT_USAGE", "main", "parser", "run"]


if __name__ == "__main__":
    sys.exit(main())
