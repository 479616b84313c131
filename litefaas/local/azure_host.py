"""The litefaas local host for an Azure Functions v2 ``function_app.py`` (not Azure Functions Core Tools).

Where ``func`` cannot be installed, this serves the real ``handlers/azure/function_app.py``
the way the Functions host and its Python worker do: it indexes the app with
``FunctionApp.get_functions()``, builds the route table from each function's HTTP trigger
binding (route template, methods) under the ``routePrefix`` of ``host.json``, decodes each
request with ``azure.functions``' own HTTP converter into a real ``func.HttpRequest``, calls
the user function and encodes its ``func.HttpResponse`` with the same converter.

    python -m litefaas.local.azure_host --port 7071
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import re
import signal
import sys
import threading
import traceback
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func
import azure.functions._abc as func_abc
from azure.functions.decorators.function_app import FunctionRegister
from azure.functions.http import HttpRequestConverter, HttpResponseConverter
from azure.functions.meta import Datum
from werkzeug.wrappers import Request as WsgiRequest
from werkzeug.wrappers import Response as WsgiResponse

from core.trace import new_span_id, new_trace_id, parse_traceparent
from litefaas.paths import ROOT

APP_DIR = ROOT / "handlers" / "azure"
SCRIPT_FILE = "function_app.py"
DEFAULT_ROUTE_PREFIX = "api"
DEFAULT_PORT = 7071
BANNER = "litefaas local Azure host (not Azure Functions Core Tools)"

_PARAMETER = re.compile(
    r"\{(?P<catch_all>\*{1,2})?(?P<name>[A-Za-z_]\w*)(?::(?P<constraint>[^}?]+))?(?P<optional>\?)?\}"
)
_CONSTRAINTS = {None: r"[^/]+", "int": r"-?\d+", "alpha": r"[A-Za-z]+", "bool": r"(?i:true|false)"}


@dataclass(frozen=True)
class HttpRoute:
    """One HTTP-triggered function as the Functions host registers it."""

    function_name: str
    template: str
    methods: frozenset[str] | None
    trigger_arg: str
    takes_context: bool
    user_function: Callable[..., Any]
    pattern: re.Pattern[str]

    def describe(self, base_url: str) -> str:
        methods = ",".join(sorted(self.methods)) if self.methods else "any method"
        return f"{self.function_name}: [{methods}] {base_url}/{self.template}"


@dataclass(frozen=True)
class HostResponse:
    """What the host sends back: status, header list (repeats allowed) and body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


class InvocationTrace(func_abc.TraceContext):
    """The host's span of one invocation, as the Functions host gives it: a child of the caller's
    ``traceparent`` (or the root of a new trace)."""

    def __init__(self, caller: str | None) -> None:
        found = parse_traceparent(caller)
        trace_id, sampled = (found[0], found[2]) if found else (new_trace_id(), True)
        self._trace_parent = f"00-{trace_id}-{new_span_id()}-{'01' if sampled else '00'}"

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class InvocationContext(func.Context):
    """The ``context`` argument of one invocation (the retry context is not simulated)."""

    def __init__(
        self,
        function_name: str,
        function_directory: str,
        invocation_id: str | None = None,
        caller_trace: str | None = None,
    ) -> None:
        self._trace = InvocationTrace(caller_trace)
        self._function_name = function_name
        self._function_directory = function_directory
        self._invocation_id = invocation_id or str(uuid.uuid4())
        self._local: Any = threading.local()
        self._local.invocation_id = self._invocation_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> type[threading.local]:
        local: type[threading.local] = self._local
        return local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> InvocationTrace:
        return self._trace

    @property
    def retry_context(self) -> Any:
        raise NotImplementedError(f"{BANNER}: no retry context")


def compile_route(template: str) -> re.Pattern[str]:
    """A regex for an ASP.NET-style route template: ``a/{id}``, ``{id:int}``, ``{name?}``, ``{*rest}``.

    It matches a path relative to the route prefix, starting with ``/``; case-insensitive, like Azure.
    """
    segments = [segment for segment in template.strip("/").split("/") if segment]
    pattern = ""
    for index, segment in enumerate(segments):
        whole = _PARAMETER.fullmatch(segment)
        if whole and (whole["catch_all"] or whole["optional"]):
            if whole["catch_all"] and index != len(segments) - 1:
                raise ValueError(f"route {template!r}: a catch-all parameter must be the last segment")
            value = ".*" if whole["catch_all"] else _constraint(template, whole["constraint"])
            pattern += f"(?:/(?P<{whole['name']}>{value}))?"
            continue
        pattern += "/"
        position = 0
        for parameter in _PARAMETER.finditer(segment):
            if parameter["catch_all"] or parameter["optional"]:
                raise ValueError(f"route {template!r}: optional and catch-all parameters need a segment each")
            pattern += re.escape(segment[position : parameter.start()])
            pattern += f"(?P<{parameter['name']}>{_constraint(template, parameter['constraint'])})"
            position = parameter.end()
        pattern += re.escape(segment[position:])
    return re.compile(pattern + "/?", re.IGNORECASE)


def _constraint(template: str, name: str | None) -> str:
    if name not in _CONSTRAINTS:
        raise ValueError(f"route {template!r}: constraint {name!r} is not supported by the {BANNER}")
    return _CONSTRAINTS[name]


_ROUTE_TABLES: weakref.WeakKeyDictionary[FunctionRegister, tuple[HttpRoute, ...]]
_ROUTE_TABLES = weakref.WeakKeyDictionary()


def http_routes(function_app: FunctionRegister) -> tuple[HttpRoute, ...]:
    """The app's HTTP functions in the order the Functions host tries them (by function name).

    ``get_functions()`` may run only once per app (it records the names it has seen and refuses
    them the second time), so the table is kept per app.
    """
    if function_app not in _ROUTE_TABLES:
        routes = [_http_route(function) for function in function_app.get_functions()]
        found = sorted((route for route in routes if route), key=lambda route: route.function_name.lower())
        _ROUTE_TABLES[function_app] = tuple(found)
    return _ROUTE_TABLES[function_app]


def _http_route(function: func.decorators.function_app.Function) -> HttpRoute | None:
    bindings = [json.loads(binding) for binding in function.get_raw_bindings()]
    trigger = next((binding for binding in bindings if binding["type"] == "httpTrigger"), None)
    if trigger is None:
        return None
    name = function.get_function_name() or ""
    outputs = [binding for binding in bindings if binding["direction"] == "OUT"]
    if [(binding["type"], binding["name"]) for binding in outputs] != [("http", "$return")]:
        raise ValueError(f"function {name}: the {BANNER} supports one HTTP output bound to $return")
    user_function = function.get_user_function()
    parameters = set(inspect.signature(user_function).parameters)
    takes_context = "context" in parameters
    if parameters - {"context"} != {trigger["name"]}:
        raise ValueError(f"function {name}: parameters {sorted(parameters)} do not match its bindings")
    template = trigger.get("route") or name
    methods = trigger.get("methods")
    return HttpRoute(
        function_name=name,
        template=template,
        methods=frozenset(method.upper() for method in methods) if methods else None,
        trigger_arg=trigger["name"],
        takes_context=takes_context,
        user_function=user_function,
        pattern=compile_route(template),
    )


class AzureHost:
    """A WSGI application serving a function app's HTTP functions under its route prefix."""

    def __init__(
        self,
        function_app: FunctionRegister,
        route_prefix: str = DEFAULT_ROUTE_PREFIX,
        function_directory: Path = APP_DIR,
    ) -> None:
        self.routes = http_routes(function_app)
        self.route_prefix = route_prefix.strip("/")
        self.function_directory = function_directory

    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        """The function that answers ``method path`` (a full path, prefix included) and its route values."""
        prefix = f"/{self.route_prefix}" if self.route_prefix else ""
        if not path.lower().startswith(prefix.lower()):
            return None
        relative = path[len(prefix) :]
        if relative and not relative.startswith("/"):
            return None
        for route in self.routes:
            if route.methods is not None and method.upper() not in route.methods:
                continue
            found = route.pattern.fullmatch(relative)
            if found:
                return route, {key: value for key, value in found.groupdict().items() if value is not None}
        return None

    def invoke(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> HostResponse:
        """Route one request to its function; Azure's empty 404 when no route takes it, 500 if it raises."""
        parts = urlsplit(url)
        matched = self.match(method, unquote(parts.path))
        if matched is None:
            return HostResponse(404, [], b"")
        route, route_params = matched
        request = HttpRequestConverter.decode(
            Datum(type="http", value=_http_datum(method, url, headers, parts.query, route_params, body)),
            trigger_metadata=None,
        )
        arguments: dict[str, Any] = {route.trigger_arg: request}
        if route.takes_context:
            caller_trace = next((v for k, v in headers.items() if k.lower() == "traceparent"), None)
            arguments["context"] = InvocationContext(
                route.function_name, str(self.function_directory), caller_trace=caller_trace
            )
        try:
            result = route.user_function(**arguments)
            return _host_response(HttpResponseConverter.encode(result, expected_type=None))
        except Exception:  # noqa: BLE001 - the Functions host logs the failure and answers 500
            print(f"function {route.function_name} failed:\n{traceback.format_exc()}", file=sys.stderr)
            return HostResponse(500, [], b"")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = WsgiRequest(environ)
        answer = self.invoke(request.method, request.url, dict(request.headers.items()), request.get_data())
        response = WsgiResponse(answer.body, status=answer.status, headers=answer.headers)
        if not any(name.lower() == "content-type" for name, _ in answer.headers):
            del response.headers["Content-Type"]
        return response(environ, start_response)


def _http_datum(
    method: str,
    url: str,
    headers: Mapping[str, str],
    query: str,
    route_params: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    return {
        "method": Datum(method.upper(), "string"),
        "url": Datum(url, "string"),
        "headers": {name: Datum(value, "string") for name, value in headers.items()},
        "query": {name: Datum(value, "string") for name, value in params.items()},
        "params": {name: Datum(value, "string") for name, value in route_params.items()},
        "body": Datum(body, "bytes"),
    }


def _host_response(datum: Datum) -> HostResponse:
    if datum.type == "string":
        return HostResponse(200, [("Content-Type", "text/plain; charset=utf-8")], datum.value.encode())
    value = datum.value
    headers = [(name, header.value) for name, header in value["headers"].items()]
    for cookie in value.get("cookies") or ():
        headers.extend(("Set-Cookie", morsel.OutputString()) for morsel in cookie.values())
    return HostResponse(int(value["status_code"].value), headers, value["body"].value or b"")


def route_prefix(app_dir: Path) -> str:
    """``extensions.http.routePrefix`` of the app's ``host.json`` (``api`` when not set)."""
    host_json = app_dir / "host.json"
    if not host_json.is_file():
        return DEFAULT_ROUTE_PREFIX
    settings = json.loads(host_json.read_text(encoding="utf-8"))
    prefix = settings.get("extensions", {}).get("http", {}).get("routePrefix", DEFAULT_ROUTE_PREFIX)
    return str(prefix)


def load_function_app(app_dir: Path = APP_DIR) -> FunctionRegister:
    """Import ``function_app.py`` from ``app_dir`` as the worker does and return its one function app."""
    script = app_dir / SCRIPT_FILE
    spec = importlib.util.spec_from_file_location("function_app", script)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"no {SCRIPT_FILE} in {app_dir}")
    module = importlib.util.module_from_spec(spec)
    if str(app_dir) not in sys.path:
        sys.path.append(str(app_dir))
    sys.modules["function_app"] = module
    spec.loader.exec_module(module)
    apps = {id(value): value for value in vars(module).values() if isinstance(value, FunctionRegister)}
    if len(apps) != 1:
        raise ValueError(f"{script} must define exactly one FunctionApp at module level, found {len(apps)}")
    return next(iter(apps.values()))


def load_host(app_dir: Path = APP_DIR) -> AzureHost:
    """The host for the function app in ``app_dir``, with its ``host.json`` route prefix."""
    return AzureHost(load_function_app(app_dir), route_prefix(app_dir), app_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the function app on a threaded WSGI server until SIGINT or SIGTERM."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    parser = argparse.ArgumentParser(prog="python -m litefaas.local.azure_host", description=BANNER)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--app-dir", type=Path, default=APP_DIR, help="the function app's folder")
    parser.add_argument("--access-log", action="store_true", help="log every request line")
    args = parser.parse_args(argv)

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            if args.access_log:
                super().log_request(code, size)

    app_dir: Path = args.app_dir.resolve()
    host = load_host(app_dir)
    server = make_server(args.host, args.port, host, threaded=True, request_handler=QuietHandler)
    base_url = f"http://{args.host}:{server.port}" + (f"/{host.route_prefix}" if host.route_prefix else "")
    print(f"{BANNER}: serving the real {app_dir / SCRIPT_FILE} at {base_url}", flush=True)
    for route in host.routes:
        print(f"  {route.describe(base_url)}", flush=True)

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print(f"{BANNER}: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
