"""The GCP entry point in process, as its WSGI or ASGI server calls it: what the speed benchmarks measure."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from litefaas.paths import ROOT


def gcp_wsgi_app(env: Mapping[str, str]) -> Any:
    """functions-framework's real Flask app for ``handlers/gcp/main.py``, cold-started in ``env``."""
    from functions_framework import _function_registry

    _function_registry.ASGI_FUNCTIONS.discard("predict")  # left by an ASGI load in this process
    return _gcp_app({**env, "FUNCTION_USE_ASGI": "false"})


def gcp_asgi_app(env: Mapping[str, str]) -> Any:
    """functions-framework's real ASGI app for ``handlers/gcp/main.py`` (``FUNCTION_USE_ASGI``,
    as deployed), cold-started in ``env``."""
    return _gcp_app({**env, "FUNCTION_USE_ASGI": "true"})


def _gcp_app(env: Mapping[str, str]) -> Any:
    import functions_framework

    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        sys.modules.pop("main", None)
        return functions_framework.create_app(  # type: ignore[no-untyped-call]
            target="predict", source=str(ROOT / "handlers" / "gcp" / "main.py")
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def wsgi_post(app: Any, path: str, content_type: str, body: bytes) -> tuple[str, bytes]:
    """One POST handed to a WSGI app as gunicorn hands it: an environ and a body stream."""
    statuses: list[str] = []
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }
    answer = b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    return statuses[0], answer


class AsgiCaller:
    """Requests handed to an ASGI app as uvicorn hands them: a scope, the body in ``http.request``
    messages of ``chunk`` bytes, the answer gathered from ``http.response.*``; one event loop for all.
    uvicorn hands on what each read of the socket brought: on 127.0.0.1, with uvloop and httptools,
    a 602 KB body came in 3 or 4 messages of up to 256,000 bytes; the default of 64 KiB is the
    more messages a slower network would bring."""

    def __init__(self, app: Any, chunk: int = 65536) -> None:
        import asyncio

        self.app = app
        self.chunk = chunk
        self.loop = asyncio.new_event_loop()

    def __call__(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body) of one request."""
        return self.loop.run_until_complete(self._call(method, path, headers, body))

    def post(self, path: str, content_type: str, body: bytes) -> tuple[str, bytes]:
        """As :func:`wsgi_post`: the status line's start and the body."""
        status, _, answer = self(  # the status as text, like WSGI's
            "POST", path, {"Content-Type": content_type, "Content-Length": str(len(body))}, body
        )
        return str(status), answer

    async def _call(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        raw_path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(raw_path),  # decoded, as uvicorn gives it; raw_path as the request line had it
            "raw_path": raw_path.encode("latin-1", "replace"),
            "query_string": query.encode("latin-1", "replace"),
            "root_path": "",
            # bytes on the wire: text beyond latin-1 arrives as its UTF-8
            "headers": [
                (k.lower().encode("utf-8", "replace"), v.encode("utf-8", "replace"))
                for k, v in headers.items()
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        parts = [body[i : i + self.chunk] for i in range(0, len(body), self.chunk)] or [b""]
        messages = [
            {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
            for i, part in enumerate(parts)
        ]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        headers_out = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start.get("headers", [])}
        return int(start["status"]), headers_out, answer
