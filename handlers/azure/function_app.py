"""Azure Functions entrypoint, Python v2 programming model: ``/api/predict``, ``/api/keys``, ``/api/health``,
the Open Inference Protocol's ``/api/v2/...`` and the Oblivious HTTP gateway.

Each route is its own function, so Azure's route table, metrics and logs name it. The
``unmatched_route`` catch-all answers every other path and method with the protocol's 404/405
JSON instead of Azure's empty 404: the Functions host tries routes in function-name order
(literal routes first where its routing honours precedence), and ``unmatched_route`` sorts
after the other routes, so it sees only what they do not take.
"""

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

import azure.functions as func

from core.app import App, cold_start
from core.telemetry import APPLICATIONINSIGHTS

RESPONSE_LIMIT = 100 * 1000 * 1000
"""Azure Functions' HTTP front end carries at most 100 MB."""
INSTRUMENTATIONS = ("azure_sdk", "django", "fastapi", "flask", "psycopg2", "requests", "urllib", "urllib3")
"""azure-monitor-opentelemetry's library instrumentations, all off: litefaas's span is the request's."""
MONITOR_MISSING = (
    f"litefaas: {APPLICATIONINSIGHTS} is set, but azure-monitor-opentelemetry is not installed:"
    " deploy with --param azureAppInsights=true (or `litefaas package --app-insights`), or unset the"
    " connection string"
)


def configure_monitoring(environ: Mapping[str, str] = os.environ) -> bool:
    """Application Insights where its connection string is set: OpenTelemetry's providers pointed
    at it, and ``azure-monitor-opentelemetry`` imported only then (the cold start without it is
    unchanged)."""
    if not environ.get(APPLICATIONINSIGHTS, "").strip():
        return False
    os.environ.setdefault("OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "azure_app_service")  # no VM metadata probe
    os.environ.setdefault("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")  # nothing but the app's own
    try:
        from azure.monitor.opentelemetry import configure_azure_monitor
    except ImportError:
        raise SystemExit(MONITOR_MISSING) from None
    configure_azure_monitor(instrumentation_options={name: {"enabled": False} for name in INSTRUMENTATIONS})
    return True


def create_function_app(core_app: App) -> func.FunctionApp:
    """The function app serving ``core_app``: one function per route and a catch-all."""
    function_app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    def answer(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        request_id = context.invocation_id or req.headers.get("x-ms-client-request-id")
        path = urlsplit(req.url).path
        headers: Mapping[str, str] = req.headers
        host_trace = getattr(getattr(context, "trace_context", None), "trace_parent", None)
        if isinstance(host_trace, str) and host_trace:  # the host's span, itself the caller's child
            headers = {**req.headers, "traceparent": host_trace}
        reply = core_app.handle(
            req.method, path, headers, req.get_body(), request_id, response_limit=RESPONSE_LIMIT
        )
        return func.HttpResponse(reply.body, status_code=reply.status, headers=reply.headers)

    @function_app.route(route="predict", methods=[func.HttpMethod.POST])
    def predict(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return answer(req, context)

    @function_app.route(route="keys", methods=[func.HttpMethod.GET])
    def keys(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return answer(req, context)

    @function_app.route(route="health", methods=[func.HttpMethod.GET])
    def health(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return answer(req, context)

    @function_app.route(route="v2/{*oip_path}", methods=[func.HttpMethod.GET, func.HttpMethod.POST])
    def oip(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return answer(req, context)

    @function_app.route(
        route=".well-known/ohttp-gateway", methods=[func.HttpMethod.GET, func.HttpMethod.POST]
    )
    def ohttp_gateway(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return answer(req, context)

    @function_app.route(route="{*path}")
    def unmatched_route(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return answer(req, context)

    return function_app


configure_monitoring()
app = create_function_app(cold_start(provider="azure"))
