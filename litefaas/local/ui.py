"""The demo page's server for ``litefaas serve --ui``: a small static server on 127.0.0.1.

It serves the page (``litefaas/local/web/``: plain HTML, CSS and one JS module), the built
JavaScript client as ``/litefaas.js`` and ``/config.json``, which names each local function the
page calls directly (their ``LITEFAAS_CORS_ORIGINS`` lists this server's origin). Nothing comes
from anywhere else: the page works offline, and its Content-Security-Policy says so.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from litefaas.local.server import ServerError
from litefaas.paths import ROOT

WEB = Path(__file__).resolve().parent / "web"
"""The page's own files."""
CLIENT_JS = ROOT / "clients" / "js" / "dist" / "litefaas.js"
"""The JavaScript client, one ES module built by ``make setup``."""
SAMPLE_ROWS = Path(__file__).resolve().parent.parent / "data" / "breast_cancer_rows.json"
DEFAULT_UI_PORT = 8400

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
}
_CSP = (
    "default-src 'self'; connect-src 'self' http://127.0.0.1:* http://localhost:*; "
    "img-src 'self' data: blob:; style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'none'"
)


@dataclass(frozen=True)
class Function:
    """One local function the page calls: its provider, base URL and the model folder it serves."""

    provider: str
    url: str
    model_dir: Path | None = None


@dataclass
class PageConfig:
    """What ``/config.json`` tells the page."""

    functions: list[Function] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        models: dict[str, dict[str, Any]] = {}
        for function in self.functions:
            key = _model_key(function.model_dir)
            if key not in models:
                models[key] = _model_extras(function.model_dir)
        return {
            "functions": [
                {"provider": f.provider, "url": f.url, "model": _model_key(f.model_dir)}
                for f in self.functions
            ],
            "models": models,
        }


def _model_key(model_dir: Path | None) -> str:
    return model_dir.name if model_dir is not None else "default"


def _model_extras(model_dir: Path | None) -> dict[str, Any]:
    """Feature names from the manifest, and a sample row for the seed's 30 features."""
    from core.engine import DEFAULT_MODEL_DIR

    folder = model_dir or DEFAULT_MODEL_DIR
    extras: dict[str, Any] = {}
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return extras
    names = manifest.get("feature_names") or []
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        extras["feature_names"] = names
    label = manifest.get("label")
    if isinstance(label, dict) and isinstance(label.get("meaning"), str):
        extras["meaning"] = label["meaning"]
    if len(names) == 30:
        try:
            sample = json.loads(SAMPLE_ROWS.read_text(encoding="utf-8"))
            extras["samples"] = [
                {"row": row, "label": label}
                for row, label in zip(sample["rows"][:8], sample["labels"][:8], strict=True)
            ]
        except (OSError, ValueError, KeyError):
            pass
    return extras


class UIServer(ThreadingHTTPServer):
    """The page's server; :attr:`config` may be filled in once the functions have started."""

    daemon_threads = True

    def __init__(self, port: int, client_js: Path = CLIENT_JS) -> None:
        try:
            super().__init__(("127.0.0.1", port), _Handler)
        except OSError as exc:
            raise ServerError(f"the page cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}") from None
        self.config = PageConfig()
        self.client_js = client_js
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> UIServer:
        self._thread = threading.Thread(target=self.serve_forever, name="litefaas-ui", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(5)
            self._thread = None
        self.server_close()

    def __enter__(self) -> UIServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    server: UIServer
    server_version = "litefaas-ui"

    def log_message(self, *_: object) -> None:
        pass

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/config.json":
            body = json.dumps(self.server.config.to_json()).encode()
            self._reply(200, _TYPES[".json"], body)
            return
        if path == "/litefaas.js":
            try:
                self._reply(200, _TYPES[".js"], self.server.client_js.read_bytes())
            except OSError:
                message = b"clients/js/dist/litefaas.js is not built: run make setup"
                self._reply(404, "text/plain; charset=utf-8", message)
            return
        name = "index.html" if path in ("/", "/index.html") else path.lstrip("/")
        file = WEB / name
        if "/" in name or file.suffix not in _TYPES or not file.is_file():
            self._reply(404, "text/plain; charset=utf-8", b"not found")
            return
        self._reply(200, _TYPES[file.suffix], file.read_bytes())

    do_HEAD = do_GET


def page_config(servers: Sequence[Any], model_dirs: Mapping[str, Path | None]) -> PageConfig:
    """The page's configuration from started :class:`~litefaas.local.server.LocalServer` s;
    ``model_dirs`` maps a server's name to the model folder it serves."""
    return PageConfig(
        [
            Function(server.name.split("-", 1)[0], server.spec.base_url, model_dirs.get(server.name))
            for server in servers
        ]
    )
