"""Answer one request with an unpacked bundle alone: run by path in the target's ``pythonX.Y -I -S``.

    pythonX.Y -I -S probe.py CLOUD BUNDLE_ROOT [PLATFORM_LAYER] < request-body

Nothing but the bundle (and the platform's own layer, where the cloud installs one) is on the path:
this file imports only the standard library before it puts them there. It prints one JSON line:
the status, the answer's body, where each runtime package was loaded from, and the Python version.
"""

import json
import os
import sys
from typing import Any

ORIGINS = ("numpy", "ai_edge_litert", "cryptography", "_cffi_backend", "core")
WHEN_LOADED = ("azure.monitor.opentelemetry", "opentelemetry.sdk.trace")
"""Reported too where the bundle loaded them (Application Insights' exporter)."""


def answer(cloud: str, root: str, body: bytes) -> tuple[int, bytes]:
    """The status and body the bundle's own entrypoint answers ``POST /predict`` with."""
    from core.protocol import ENCRYPTED_TYPE

    headers = {"content-type": ENCRYPTED_TYPE}
    if cloud == "aws":
        from handlers.aws import handler as entry

        event = {
            "version": "2.0",
            "rawPath": "/predict",
            "headers": headers,
            "body": body.decode(),
            "isBase64Encoded": False,
            "requestContext": {"http": {"method": "POST", "path": "/predict"}},
        }
        result = entry.handler(event, None)
        return result["statusCode"], result["body"].encode()
    if cloud == "gcp":
        import functions_framework

        app = functions_framework.create_app(target="predict", source=os.path.join(root, "main.py"))  # type: ignore[no-untyped-call]
        if hasattr(app, "test_client"):  # WSGI: Flask
            reply = app.test_client().post("/predict", data=body, headers=headers)
            return reply.status_code, reply.get_data()
        return asgi_post(app, "/predict", headers, body)  # FUNCTION_USE_ASGI, as deployed
    import azure.functions as func
    import function_app

    functions = {f.get_function_name(): f.get_user_function() for f in function_app.app.get_functions()}

    class Context:
        invocation_id = "probe"

    request = func.HttpRequest(
        "POST", "https://probe.azurewebsites.net/api/predict", headers=headers, body=body
    )
    reply = functions["predict"](request, Context())
    return reply.status_code, reply.get_body()


def asgi_post(app: Any, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    """One POST through an ASGI app, as uvicorn hands it over: a scope, the body, the answer's messages."""
    import asyncio

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def main(argv: list[str]) -> None:
    cloud, root = argv[0], argv[1]
    layer = argv[2] if len(argv) > 2 else ""
    site = os.path.join(root, ".python_packages", "lib", "site-packages") if cloud == "azure" else root
    sys.path[:0] = [p for p in (root, site, layer) if p]
    status, body = answer(cloud, root, sys.stdin.buffer.read())
    loaded = [name for name in WHEN_LOADED if name in sys.modules]
    origins: dict[str, Any] = {
        name: getattr(sys.modules.get(name), "__file__", None) or "" for name in (*ORIGINS, *loaded)
    }
    python = sys.version.split()[0]
    print(json.dumps({"status": status, "body": body.decode(), "origins": origins, "python": python}))


if __name__ == "__main__":
    main(sys.argv[1:])
