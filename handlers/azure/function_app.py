"""Azure Functions entrypoint, Python v2 programming model: ``/api/predict``, ``/api/keys``, ``/api/health``,
the Open Inference Protocol's ``/api/v2/...`` and the Oblivious HTTP gateway.

Each route is its own function, so Azure's route table, metrics and logs name it. The
``unmatched_route`` catch-all answers every other path and method with the protocol's 404/405
JSON instead of Azure's empty 404: the Functions host tries routes in function-name order
(literal routes first where its routing honours precedence), and ``unmatched_route`` sorts
after the other routes, so it sees only what they do not take.
"""

from urllib.parse import urlsplit

import azure.functions as func

from core.app import App, cold_start

RESPONSE_LIMIT = 100 * 1000 * 1000
"""Azure Functions' HTTP front end carries at most 100 MB."""


def create_function_app(core_app: App) -> func.FunctionApp:
    """The function app serving ``core_app``: one function per route and a catch-all."""
    function_app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    def answer(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        request_id = context.invocation_id or req.headers.get("x-ms-client-request-id")
        path = urlsplit(req.url).path
        reply = core_app.handle(
            req.method, path, req.headers, req.get_body(), request_id, response_limit=RESPONSE_LIMIT
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


app = create_function_app(cold_start())
