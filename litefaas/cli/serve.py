"""``litefaas serve``: the function on one or all providers' local hosts, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse

from core.protocol import PROVIDERS
from litefaas.cli.base import Commands


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve the function locally on a provider's own tooling",
        description="Serve the function on 127.0.0.1 with serverless-offline (aws), functions-framework "
        "(gcp) or the Azure Functions host (azure); 'all' starts the three on consecutive ports. Keys come "
        "from LITEFAAS_PRIVATE_KEYS(_FILE), or a fresh key is made for the session.",
    )
    parser.add_argument("--provider", choices=[*PROVIDERS, "all"], default="all")
    parser.add_argument("--port", type=int, default=8080, help="first port (default 8080)")
    parser.add_argument(
        "--plaintext", action="store_true", help="also accept plaintext requests (development)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Start the hosts, print where they listen and the public key set, wait for Ctrl-C or SIGTERM
    (or a host that exits), stop every one."""
    import json
    import signal
    import threading
    from types import FrameType

    from litefaas.cli.console import make_console
    from litefaas.local.serving import function_env, start_servers

    providers = list(PROVIDERS) if args.provider == "all" else [args.provider]
    console = make_console()
    env, keyset = function_env(allow_plaintext=args.plaintext)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with console.status(f"starting {', '.join(providers)} on 127.0.0.1:{args.port}…"):
            servers = start_servers(providers, args.port, env)
        for server in servers:
            spec = server.spec
            where = f"[cyan]{spec.base_url}[/]  (pid {server.pid}; {spec.description})"
            console.print(f"[bold]{server.name}[/] ready at {where}")
        console.print("public key set:")
        console.print_json(json.dumps(keyset))
        if args.plaintext:
            console.print("[yellow]plaintext requests are accepted (LITEFAAS_ALLOW_PLAINTEXT=1)[/]")
        console.print("Ctrl-C stops every server.")
        while not stop.wait(0.5):
            for server in servers:
                if server.process is not None and server.process.poll() is not None:
                    console.print(f"[red]{server.name} exited with code {server.process.returncode}[/]")
                    console.print(server.log_tail())
                    stop.set()
        console.print("stopping…")
        for server in servers:
            server.stop()
        console.print("stopped; no process left behind.")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
