"""``litefaas serve``: the function on one or all providers' local hosts, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.protocol import PROVIDERS
from litefaas.cli.base import Commands


def register(commands: Commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="serve the function locally on a provider's own tooling",
        description="Serve the function on 127.0.0.1 with serverless-offline (aws), functions-framework "
        "(gcp) or the Azure Functions host (azure); 'all' starts the three on consecutive ports. Keys come "
        "from LITEFAAS_PRIVATE_KEYS(_FILE), or a fresh key is made for the session. --ui also serves a demo "
        "page on 127.0.0.1 that seals requests in the browser and calls each function directly.",
    )
    parser.add_argument("--provider", choices=[*PROVIDERS, "all"], default="all")
    parser.add_argument("--port", type=int, default=8080, help="first port (default 8080)")
    parser.add_argument(
        "--plaintext", action="store_true", help="also accept plaintext requests (development)"
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="DIR",
        help="serve this model artifact (a folder with manifest.json) instead of the seed; repeat it to "
        "serve several, each on every provider on the next ports",
    )
    parser.add_argument(
        "--ui",
        action="store_true",
        help="also serve the demo page (draw a digit, send it sealed to every provider) and allow its "
        "origin in LITEFAAS_CORS_ORIGINS",
    )
    parser.add_argument("--ui-port", type=int, default=8400, help="the demo page's port (default 8400)")
    parser.add_argument(
        "--relay",
        type=int,
        metavar="PORT",
        help="also start a plain Oblivious HTTP relay on 127.0.0.1:PORT in front of the hosts, one "
        "resource per host (PORT/aws, /gcp, /azure): a test and demo aid, not a product",
    )
    parser.add_argument(
        "--relay-log",
        type=Path,
        metavar="FILE",
        help="with --relay: write every forward (encapsulated bytes) here",
    )
    parser.set_defaults(handler=run)


def _model_dirs(models: list[str] | None) -> list[Path | None]:
    """The model folders to serve (None: the functions' default, the seed model)."""
    from litefaas.local.server import ServerError

    folders: list[Path | None] = []
    for model in models or []:
        folder = Path(model).expanduser().resolve()
        if not (folder / "manifest.json").is_file():
            raise ServerError(f"--model {model}: no manifest.json in that folder")
        folders.append(folder)
    return folders or [None]


def _model_name(folder: Path | None) -> str:
    """The model name a folder's manifest gives (the functions' default model where None)."""
    import json

    from core.engine import DEFAULT_MODEL_DIR

    manifest = (folder or DEFAULT_MODEL_DIR) / "manifest.json"
    return str(json.loads(manifest.read_text(encoding="utf-8"))["name"])


def run(args: argparse.Namespace) -> int:
    """Start the hosts, print where they listen and the public key set, wait for Ctrl-C or SIGTERM
    (or a host that exits), stop every one."""
    import json
    import signal
    import threading
    from types import FrameType

    from litefaas.cli.console import make_console
    from litefaas.cli.key_watch import KeyWatch
    from litefaas.local.host_metrics import metrics_table, read_metrics
    from litefaas.local.relay import Relay
    from litefaas.local.server import LaunchSpec, ServerError
    from litefaas.local.serving import function_env, launch_spec, start_all
    from litefaas.local.ui import UIServer, page_config

    providers = list(PROVIDERS) if args.provider == "all" else [args.provider]
    models = _model_dirs(args.model)
    console = make_console()
    env, keyset = function_env(allow_plaintext=args.plaintext)
    ui = UIServer(args.ui_port) if args.ui else None
    if ui is not None:
        origins = [o for o in env.get("LITEFAAS_CORS_ORIGINS", "").split(",") if o.strip()]
        env["LITEFAAS_CORS_ORIGINS"] = ",".join([*origins, ui.origin])
    specs: dict[str, LaunchSpec] = {}
    model_of: dict[str, Path | None] = {}
    try:
        for index, model in enumerate(models):
            model_env = env if model is None else env | {"LITEFAAS_MODEL_DIR": str(model)}
            for offset, provider in enumerate(providers):
                name = provider if len(models) == 1 else f"{provider}-{model.name if model else 'default'}"
                specs[name] = launch_spec(provider, args.port + index * len(providers) + offset, model_env)
                model_of[name] = model
    except BaseException:
        if ui is not None:
            ui.stop()
        raise
    relay = None
    if args.relay is not None:
        try:
            relay = Relay(args.relay, {name: spec.base_url for name, spec in specs.items()}, args.relay_log)
        except OSError as exc:
            if ui is not None:
                ui.stop()
            raise ServerError(f"--relay {args.relay}: cannot listen on 127.0.0.1 ({exc.strerror})") from None
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with console.status(f"starting {', '.join(providers)} on 127.0.0.1:{args.port}…"):
            servers = start_all(specs)
        closed = "" if args.plaintext else "; 403 without --plaintext"
        for server in servers:
            spec = server.spec
            where = f"[cyan]{spec.base_url}[/]  (pid {server.pid}; {spec.description})"
            console.print(f"[bold]{server.name}[/] ready at {where}")
            oip = f"{spec.base_url}/v2/models/{_model_name(model_of[server.name])}"
            triton = spec.base_url.removeprefix("http://")
            console.print(f"  OIP at [cyan]{oip}[/]  (tritonclient url={triton}{closed})")
        if relay is not None:
            relay.start()
            for url, target in relay.resources().items():
                console.print(f"[bold]relay[/] ready at [cyan]{url}[/]  (forwards to {target})")
        if ui is not None:
            ui.config = page_config(servers, model_of)
            ui.start()
            console.print(
                f"[bold]page[/] ready at [cyan]{ui.origin}/[/]  (calls the functions directly: CORS)"
            )
        console.print("public key set:")
        console.print_json(json.dumps(keyset))
        if args.plaintext:
            console.print("[yellow]plaintext requests are accepted (LITEFAAS_ALLOW_PLAINTEXT=1)[/]")
        console.print("Ctrl-C stops every server; Ctrl-T (or SIGUSR1) shows what each host has answered.")

        def show_metrics() -> None:
            hosts = {server.name: read_metrics(server.log_lines()) for server in servers}
            console.print(metrics_table(hosts))

        keys = KeyWatch().start()
        try:
            while not stop.wait(0.25):
                if keys.asked():
                    show_metrics()
                for server in servers:
                    if server.process is not None and server.process.poll() is not None:
                        console.print(f"[red]{server.name} exited with code {server.process.returncode}[/]")
                        console.print(server.log_tail())
                        stop.set()
        finally:
            keys.stop()
        show_metrics()
        console.print("stopping…")
        for server in servers:
            server.stop()
        console.print("stopped; no process left behind.")
        return 0
    finally:
        if relay is not None:
            relay.stop()
        if ui is not None:
            ui.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
