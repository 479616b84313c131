"""The benchmark's HTML report, rendered in headless Chromium (Debian's ``chromium`` through Playwright)
from a small fixture bench.json: every section is there, no cell says None/NaN/undefined, and the
page needs no network. Keeps a screenshot at build/bench/report.png."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from litefaas.benchmark.cost import patterns_cost
from litefaas.benchmark.report import html_report, plot
from litefaas.paths import BUILD

pytestmark = pytest.mark.browser

SECTIONS = ("summary", "providers", "models", "cost", "pick", "figures", "baseline", "notes")


def _run(p50: float, clients: tuple[int, ...] = (1, 4, 16, 64)) -> dict[str, Any]:
    return {
        str(c): {"p50_ms": p50 * (1 + c / 16), "p99_ms": p50 * 3, "throughput_rps": 400.0 / p50, "errors": 0}
        for c in clients
    }


def fixture_document() -> dict[str, Any]:
    providers = {
        name: {
            "url": f"http://127.0.0.1:{8300 + k}",
            "requests": 900,
            "errors": 0,
            "p50_ms": p50,
            "p95_ms": p50 * 2,
            "p99_ms": p50 * 3,
            "throughput_rps": 700.0 / p50,
            "cold_start_ms": 180.0 + 40 * k,
            "host_start_ms": 900.0 + 300 * k,
            "by_concurrency": _run(p50),
            "by_batch": {},
            "plaintext": None,
        }
        for k, (name, p50) in enumerate((("aws", 1.4), ("gcp", 1.1), ("azure", 1.6)))
    }
    models = {
        name: {
            "description": description,
            "p50_ms": p50,
            "p95_ms": p50 * 1.5,
            "p99_ms": p50 * 2,
            "throughput_rps": 300.0 / p50,
            "first_request_ms": 40.0,
            "host_start_ms": 3000.0,
            "request_bytes": sent,
            "response_bytes": 250,
            "model_bytes": 30_000,
            "requests": 80,
            "errors": 0,
            "by_concurrency": _run(p50, (1, 16)),
        }
        for name, description, p50, sent in (
            ("mlp-v2", "seed MLP, version 2", 1.0, 343),
            ("image-v2", "224x224x3 conv net, version 2", 12.0, 602_339),
            ("image-jpeg", "224x224x3 conv net, JPEG", 9.0, 15_475),
            ("chain-2", "2-segment chain", 5.0, 1_080),
        )
    }
    cost: dict[str, Any] = {"trace": "azure2019_10fn", "by_model": {}, "high_concurrency": {}}
    for name, latency in (("mlp-v1", 1.3), ("image-v2", 12.0)):
        for key, level in (("by_model", 1), ("high_concurrency", 16)):
            cost[key][name] = patterns_cost(
                {"p50_ms": latency, "p95_ms": latency * 1.5, "p99_ms": latency * 2},
                cold_start_ms=200,
                concurrency={"gcp": level, "azure": level},
                trace="azure2019_no_such_trace",  # the trace row is skipped, saying why
            )
    return {
        "providers": providers,
        "models": models,
        "baseline": {
            "import_ms": 3643.0,
            "cold_start_ms": 3700.0,
            "litert_import_ms": 66.0,
            "litert_cold_start_ms": 98.0,
            "cold_start_ratio": 37.8,
            "litert_closure_mb": 60.1,
            "tensorflow_closure_mb": 1500.2,
            "closure_ratio": 25.0,
            "bundles": "not measured: run bench/bundle_sizes.py",
        },
        "environment": {
            "litefaas": "0.1.0",
            "python": "3.12.1",
            "machine": "x86_64",
            "cpus": 2,
            "cpu_model": "Fixture CPU @ 2.0GHz",
            "system": "Linux",
            "when": "2026-12-01T12:00:00Z",
            "quick": True,
            "interrupted": False,
            "seconds": 150.0,
        },
        "cost": cost,
    }


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = os.environ.get("LITEFAAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("Debian's chromium is not installed (make setup installs it)")
    return path


def test_the_report_reads_as_a_page(tmp_path: Path, chromium_path: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    # GIVEN a report made from a small bench.json (no benchmark is run)
    document = fixture_document()
    (tmp_path / "bench.json").write_text(json.dumps(document), encoding="utf-8")
    figures = plot(document, {}, tmp_path)
    page_path = tmp_path / "report.html"
    page_path.write_text(html_report(document, figures, ["a note on method"]), encoding="utf-8")
    # WHEN headless Chromium renders it with every network request refused
    requested: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith(("file:", "data:"))
                    else (requested.append(route.request.url), route.abort())
                ),
            )
            page.goto(page_path.as_uri())
            # THEN every section is there, the summary first
            ids = page.eval_on_selector_all("section", "nodes => nodes.map(n => n.id)")
            assert ids[0] == "summary" and set(SECTIONS) <= set(ids)
            summary = page.inner_text("#summary")
            for words in (
                "What was measured",
                "On what machine",
                "2 cores",
                "Fixture CPU",
                "Python 3.12.1",
                "Local hosts are not the clouds",
            ):
                assert words in summary
            # no table cell is None, NaN or undefined, and every table has a header with units
            cells = page.eval_on_selector_all("td, th", "nodes => nodes.map(n => n.innerText.trim())")
            assert cells and not [c for c in cells if c in {"None", "NaN", "undefined", "null", ""}]
            assert not [c for c in cells if "None" in c or "NaN" in c or "undefined" in c]
            assert "p50 (ms)" in cells and any("USD / 1M" in c for c in cells)
            # the cost table by pattern names the cheapest cloud and the dated prices
            cost = page.inner_text("#cost")
            assert "isolated requests" in cost and "steady 100 req/s" in cost and "cheapest" in cost
            assert "2025-06-01" in cost and "litefaas/data/prices.json" in cost
            assert "not on this machine" in cost  # the trace day, skipped with its reason
            # the baseline is a table, not a list of keys
            assert page.locator("#baseline table").count() == 1
            assert "import_ms" not in page.inner_text("body")
            # figures are inlined, titled and captioned in words (not file names)
            images = page.eval_on_selector_all(
                "#figures img", "nodes => nodes.map(n => [n.src.slice(0, 22), n.naturalWidth])"
            )
            assert images and all(src == "data:image/png;base64," and width > 0 for src, width in images)
            captions = page.eval_on_selector_all("figcaption", "nodes => nodes.map(n => n.innerText)")
            assert all(".png" not in c and len(c) > 80 for c in captions)
            assert "What to pick" in page.inner_text("#pick") or page.locator("#pick li").count() == 3
            assert page.get_attribute("a[href='bench.json']", "href") == "bench.json"
            assert not requested
            BUILD.joinpath("bench").mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(BUILD / "bench" / "report.png"), full_page=True)
        finally:
            browser.close()
    assert (BUILD / "bench" / "report.png").stat().st_size > 10_000
