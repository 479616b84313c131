"""The GCP entry point in process, as its WSGI server calls it: what the speed benchmarks measure."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from typing import Any

from litefaas.paths import ROOT


def gcp_wsgi_app(env: Mapping[str, str]) -> Any:
    """functions-framework's real Flask app for ``handlers/gcp/main.py``, cold-started in ``env``."""
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
