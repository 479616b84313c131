"""The function on one or all providers' local hosts: the environment, the start, the stop.

``litefaas serve``, ``litefaas bench`` and the tests start hosts through :func:`start_servers`
(or :func:`serving`, which also stops them): each provider on consecutive ports, all started at
once, then waited for together until ``/health`` answers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from core.protocol import PROVIDERS, private_keyset_json
from litefaas.local import aws, azure, gcp
from litefaas.local.server import LaunchSpec, LocalServer, ServerError

DEFAULT_PORT = 8080
LAUNCHERS: dict[str, Callable[[int, dict[str, str]], LaunchSpec]] = {
    "aws": aws.launch_spec,
    "gcp": gcp.launch_spec,
    "azure": azure.launch_spec,
}
"""How each provider's local host is started on a port with an environment."""


def launch_spec(provider: str, port: int, env: Mapping[str, str]) -> LaunchSpec:
    """How to start ``provider``'s local host on ``port`` with ``env``."""
    if provider not in LAUNCHERS:
        raise ServerError(f"unknown provider {provider!r}; choose from {', '.join(PROVIDERS)} or all")
    return LAUNCHERS[provider](port, dict(env))


def function_env(
    base: Mapping[str, str] | None = None, *, allow_plaintext: bool = False
) -> tuple[dict[str, str], dict[str, object]]:
    """The environment for local functions and their public key set.

    Keys come from ``LITEFAAS_PRIVATE_KEYS``/``_FILE`` when set; otherwise a fresh
    key is made for this session only and never written to disk.
    """
    from core import crypto
    from core.config import Settings
    from core.encoding import b64u_encode
    from core.errors import ConfigError

    env = dict(os.environ if base is None else base)
    if not env.get("LITEFAAS_PRIVATE_KEYS") and not env.get("LITEFAAS_PRIVATE_KEYS_FILE"):
        private = b64u_encode(crypto.generate_private_key(crypto.DEFAULT_SUITE))
        kid = "local-" + b64u_encode(os.urandom(4))
        env["LITEFAAS_PRIVATE_KEYS"] = private_keyset_json([(kid, crypto.DEFAULT_SUITE, private)])
    if allow_plaintext:
        env["LITEFAAS_ALLOW_PLAINTEXT"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("SLS_TELEMETRY_DISABLED", "1")
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        raise ServerError(str(exc)) from None
    keyset = settings.keyring.public_keyset() if settings.keyring else {"keys": []}
    return env, dict(keyset)


def start_all(specs: Mapping[str, LaunchSpec], timeout: float = 60.0) -> list[LocalServer]:
    """Start a host for each named spec, then wait until every one is healthy (each server's
    ``ready_ms`` says how long it took). If one fails, every one is stopped."""
    servers: list[LocalServer] = []
    try:
        for name, spec in specs.items():
            servers.append(LocalServer(name, spec).start())
        with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
            list(pool.map(lambda server: server.wait_healthy(timeout), servers))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def start_servers(
    providers: Sequence[str], port: int, env: Mapping[str, str], timeout: float = 60.0
) -> list[LocalServer]:
    """Start each provider on consecutive ports with ``env``; see :func:`start_all`."""
    specs = {provider: launch_spec(provider, port + offset, env) for offset, provider in enumerate(providers)}
    return start_all(specs, timeout)


@contextmanager
def serving(
    providers: Sequence[str], port: int, env: Mapping[str, str], timeout: float = 60.0
) -> Iterator[list[LocalServer]]:
    """:func:`start_servers`, and always stop them when the block ends."""
    servers = start_servers(providers, port, env, timeout)
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()
