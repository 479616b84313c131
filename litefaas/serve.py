"""``litefaas serve``: the function on one or all providers' local hosts, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import importlib
import json
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from types import FrameType

from litefaas.cli import CommandError
from litefaas.serve_common import LaunchSpec, LocalServer, ServerError

PROVIDERS: tuple[str, ...] = ("aws", "gcp", "azure")
DEFAULT_PORT = 8080


def launch_spec(provider: str, port: int, env: Mapping[str, str]) -> LaunchSpec:
    """How to start ``provider``'s local host on ``port`` with ``env``."""
    if provider not in PROVIDERS:
        raise CommandError(f"unknown provider {provider!r}; choose from {', '.join(PROVIDERS)} or all")
    module = importlib.import_module(f"litefaas.serve_{provider}")
    spec: LaunchSpec = module.launch_spec(port, dict(env))
    return spec


def function_env(
    base: Mapping[str, str] | None = None, *, allow_plaintext: bool = False
) -> tuple[dict[str, str], dict[str, object]]:
    """The environment for local functions and their public key set.

    Keys come from ``LITEFAAS_PRIVATE_KEYS``/``_FILE`` when set; otherwise a fresh
    key is made for this session only and never written to disk.
    """
    from core import crypto
    from core.encoding import b64u_encode

    env = dict(os.environ if base is None else base)
    if not env.get("LITEFAAS_PRIVATE_KEYS") and not env.get("LITEFAAS_PRIVATE_KEYS_FILE"):
        private = crypto.generate_private_key(crypto.DEFAULT_SUITE)
        kid = "local-" + b64u_encode(os.urandom(4))
        env["LITEFAAS_PRIVATE_KEYS"] = json.dumps(
            [{"kid": kid, "suite": crypto.DEFAULT_SUITE, "private_key": b64u_encode(private)}]
        )
    if allow_plaintext:
        env["LITEFAAS_ALLOW_PLAINTEXT"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("SLS_TELEMETRY_DISABLED", "1")
    from core.config import Settings
    from core.errors import ConfigError

    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    keyset = settings.keyring.public_keyset() if settings.keyring else {"keys": []}
    return env, dict(keyset)


def start_servers(providers: Sequence[str], port: int, env: Mapping[str, str]) -> list[LocalServer]:
    """Start each provider on consecutive ports and wait until every one is healthy."""
    servers: list[LocalServer] = []
    try:
        for offset, provider in enumerate(providers):
            server = LocalServer(provider, launch_spec(provider, port + offset, env)).start()
            servers.append(server)
        for server in servers:
            server.wait_healthy()
    except (ServerError, KeyboardInterrupt):
        for server in servers:
            server.stop()
        raise
    return servers


def run_serve(providers: Sequence[str], port: int, allow_plaintext: bool) -> int:
    from litefaas.console import make_console

    console = make_console()
    env, keyset = function_env(allow_plaintext=allow_plaintext)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with console.status(f"starting {', '.join(providers)} on 127.0.0.1:{port}…"):
            try:
                servers = start_servers(providers, port, env)
            except ServerError as exc:
                raise CommandError(str(exc)) from None
        for server in servers:
            spec = server.spec
            where = f"[cyan]{spec.base_url}[/]  (pid {server.pid}; {spec.description})"
            console.print(f"[bold]{server.name}[/] ready at {where}")
        console.print("public key set:")
        console.print_json(json.dumps(keyset))
        if allow_plaintext:
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
