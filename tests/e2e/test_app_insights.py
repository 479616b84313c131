"""What Application Insights receives from the Azure entry point: azure-monitor-opentelemetry's own
exporter, pointed by the connection string at an ingestion endpoint on 127.0.0.1 that this test serves;
from the source tree, and from an ``--app-insights`` bundle alone in an isolated Python 3.12."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from fixtures.requests import ROWS, make_keys, seal

from core.engine import Engine
from litefaas.packaging import bundle as bundler
from litefaas.packaging import proof
from litefaas.packaging.targets import Target

ROOT = Path(__file__).resolve().parent.parent.parent
CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

SCRIPT = textwrap.dedent(
    """
    import sys
    import azure.functions as func
    from opentelemetry import metrics, trace
    from litefaas.local.azure_host import InvocationContext, http_routes, load_function_app
    from litefaas.paths import ROOT

    app_dir = ROOT / "handlers" / "azure"
    routes = {route.function_name: route for route in http_routes(load_function_app(app_dir))}
    calls = (("health", "GET", "/health", b""), ("keys", "GET", "/keys", b""), ("predict", "POST", "/predict", b"x"))
    for name, method, path, body in calls:
        headers = {"traceparent": sys.argv[1], "content-type": "text/plain"}
        request = func.HttpRequest(method, f"https://fn.azurewebsites.net/api{path}", headers=headers, body=body)
        context = InvocationContext(name, str(app_dir), caller_trace=sys.argv[1])
        print(name, context.trace_context.trace_parent, routes[name].user_function(req=request, context=context).status_code)
    trace.get_tracer_provider().force_flush()
    metrics.get_meter_provider().force_flush()
    """
)


class Ingestion(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        items = json.loads(body)
        Ingestion.received.extend(items if isinstance(items, list) else [items])
        answer = json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ingestion():
    Ingestion.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ingestion)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def connection_string(port: int) -> str:
    return (
        f"InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://127.0.0.1:{port}/"
    )


def test_request_spans_and_metrics_reach_application_insights(ingestion, tmp_path):
    # GIVEN the Azure entry point with a connection string naming the local ingestion endpoint
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(tmp_path),
        "HOME": str(tmp_path),
        "LITEFAAS_PRIVATE_KEYS": make_keys().private_json,
        "LITEFAAS_LOG_LEVEL": "ERROR",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",  # the distro's default keeps 5 traces a second
        "APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string(ingestion),
    }
    # WHEN three requests arrive through the Functions host (whose span is the caller's child), the
    # last of a media type the function does not take
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, CALLER],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    answered = [line.split() for line in out.stdout.splitlines()]
    assert [(name, status) for name, _, status in answered] == [
        ("health", "200"),
        ("keys", "200"),
        ("predict", "415"),
    ]
    host_spans = {name: parent[36:52] for name, parent, _ in answered}
    # THEN Application Insights receives one request per invocation, in the caller's operation,
    # each the child of the host's span
    requests = [item for item in Ingestion.received if item["data"]["baseType"] == "RequestData"]
    names = sorted(item["data"]["baseData"]["name"] for item in requests)
    assert names == ["GET health", "GET keys", "POST predict"]
    for item in requests:
        data, tags = item["data"]["baseData"], item["tags"]
        assert tags["ai.operation.id"] == CALLER[3:35]
        assert tags["ai.operation.parentId"] == host_spans[data["name"].split()[1]]
        refused = data["name"] == "POST predict"
        assert data["responseCode"] == ("415" if refused else "200")
        assert refused or data["success"] is True
        assert data["properties"]["litefaas.model"] == "breast_cancer_mlp"
    # AND the metrics: requests by route and status, the one error by its code, the one cold start
    metric_points = {
        metric["name"]: metric
        for item in Ingestion.received
        if item["data"]["baseType"] == "MetricData"
        for metric in item["data"]["baseData"]["metrics"]
    }
    assert {
        "litefaas.requests",
        "litefaas.errors",
        "litefaas.request.duration",
        "litefaas.cold_starts",
    } <= set(metric_points)

    def total(name: str) -> float:
        return sum(
            metric["value"]
            for item in Ingestion.received
            if item["data"]["baseType"] == "MetricData"
            for metric in item["data"]["baseData"]["metrics"]
            if metric["name"] == name
        )

    assert total("litefaas.requests") == 3
    assert total("litefaas.errors") == 1 and total("litefaas.cold_starts") == 1


@pytest.mark.skipif(proof.find_python("3.12") is None, reason="no working python3.12 here")
def test_an_app_insights_bundle_exports_from_the_bundle_alone(ingestion, tmp_path):
    # GIVEN the Azure bundle `--param azureAppInsights=true` deploys, unpacked, and the SDK Flex installs
    built = bundler.build_bundle(Target("azure"), tmp_path / "dist", app_insights=True)
    root = bundler.unpack(built.path, tmp_path / "app")
    keys = make_keys()
    sealed = seal(keys, inputs=ROWS[:2])
    env = {
        "LITEFAAS_PRIVATE_KEYS": keys.private_json,
        "LITEFAAS_LOG_LEVEL": "ERROR",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": connection_string(ingestion),
        "WEBSITE_SITE_NAME": "litefaas-prod",  # set by App Service; read by the distro's detector
    }
    # WHEN python3.12 -I -S, which sees nothing but the bundle and that SDK, answers a sealed request
    # with the connection string set, and exits
    python = proof.find_python("3.12")
    assert python is not None
    result = proof.probe_bundle(
        root, "azure", python, sealed.body, env, proof.platform_layer(Target("azure"))
    )
    # THEN it answers, with the exporter and the SDK loaded from the bundle
    assert result.status == 200
    expected = Engine.from_dir().predict({"features": np.asarray(ROWS[:2], dtype=np.float32)})["probability"]
    np.testing.assert_allclose(sealed.open(result.body)["outputs"], expected, atol=1e-6)
    assert {"azure.monitor.opentelemetry", "opentelemetry.sdk.trace"} <= result.origins.keys()
    for module, origin in result.origins.items():
        assert Path(origin).is_relative_to(root), (module, origin)
    # AND Application Insights received the request and its metrics before the process ended
    [request] = [item for item in Ingestion.received if item["data"]["baseType"] == "RequestData"]
    assert request["data"]["baseData"]["name"] == "POST predict"
    assert request["data"]["baseData"]["properties"]["litefaas.model"] == "breast_cancer_mlp"
    # named for the app by the resource detector OpenTelemetry finds through the bundle's entry points
    assert request["tags"]["ai.cloud.role"] == "litefaas-prod"
    metrics = {
        metric["name"]
        for item in Ingestion.received
        if item["data"]["baseType"] == "MetricData"
        for metric in item["data"]["baseData"]["metrics"]
    }
    assert {"litefaas.requests", "litefaas.cold_starts"} <= metrics
