"""A plain Oblivious HTTP relay on 127.0.0.1, for tests and the demo: not a product.

``litefaas serve --relay PORT`` starts it in front of the local hosts, one relay resource per host
(``/aws``, ``/gcp``, ``/azure``; ``/`` is the first). It forwards what it gets to that host's gateway
(``…/.well-known/ohttp-gateway``): the body as it is, and of the headers only ``Content-Type`` and
``Accept``, so the gateway sees the relay and never the caller's address, cookies or agent; it adds
nothing. Every forward can be written to a log (``log``): the relay sees only encapsulated bytes,
which the tests check. In production use a relay run by someone other than the function's owner.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

FORWARDED_HEADERS = ("content-type", "accept")
MAX_BODY_BYTES = 64 * 1024 * 1024
GATEWAY_PATH = "/.well-known/ohttp-gateway"


def forward(target: str, method: str, headers: Mapping[str, str], body: bytes) -> tuple[int, str, bytes]:
    """One request to the gateway carrying only ``headers`` (plus ``Host`` and ``Content-Length``):
    no user agent, no forwarding header, nothing of the caller's."""
    parts = urlsplit(target)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    try:
        connection.putrequest(method, parts.path or "/", skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type") or "application/octet-stream", answer.read()
    finally:
        connection.close()


class Relay:
    """The relay server: ``targets`` maps a resource name to a function's base URL."""

    def __init__(self, port: int, targets: Mapping[str, str], log: Path | None = None) -> None:
        if not targets:
            raise ValueError("a relay needs at least one gateway")
        self.targets = {name: url.rstrip("/") + GATEWAY_PATH for name, url in targets.items()}
        self.default = next(iter(self.targets.values()))
        self._log: IO[str] | None = log.open("a", encoding="utf-8") if log is not None else None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="litefaas-relay", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def resources(self) -> dict[str, str]:
        """Relay URL -> the gateway it forwards to."""
        return {f"{self.url}/{name}": target for name, target in self.targets.items()}

    def start(self) -> Relay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._log is not None:
            self._log.close()

    def target_of(self, path: str) -> str | None:
        name = path.split("?", 1)[0].strip("/")
        return self.default if not name else self.targets.get(name)

    def record(self, entry: dict[str, Any]) -> None:
        if self._log is not None:
            with self._lock:
                self._log.write(json.dumps(entry) + "\n")
                self._log.flush()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "litefaas-relay"
            sys_version = ""

            def log_message(self, format: str, *args: Any) -> None:
                return  # the relay keeps no access log of callers

            def _forward(self) -> None:
                target = relay.target_of(self.path)
                if target is None:
                    self._answer(404, {"Content-Type": "text/plain"}, b"no such relay resource")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 <= length <= MAX_BODY_BYTES:
                    self._answer(413, {"Content-Type": "text/plain"}, b"")
                    return
                body = self.rfile.read(length) if length else b""
                headers = {name: value for name in FORWARDED_HEADERS if (value := self.headers.get(name))}
                try:
                    status, answer_type, answer_body = forward(target, self.command, headers, body)
                except (OSError, http.client.HTTPException):
                    self._answer(502, {"Content-Type": "text/plain"}, b"the gateway did not answer")
                    return
                kept = {"Content-Type": answer_type}
                relay.record(
                    {
                        "method": self.command,
                        "target": target,
                        "request_headers": headers,
                        "request_b64": base64.b64encode(body).decode(),
                        "status": status,
                        "response_headers": kept,
                        "response_b64": base64.b64encode(answer_body).decode(),
                    }
                )
                self._answer(status, kept, answer_body)

            def _answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = _forward
            do_POST = _forward

        return Handler
