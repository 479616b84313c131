# litefaas: `make demo` runs the main job, `make test` the test suite.
# Both set up what they need first (a virtualenv in .venv, npm packages), idempotently.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
JS_DIR := clients/js
JS_STAMP := $(JS_DIR)/node_modules/.installed
JS_BUNDLE := $(JS_DIR)/dist/litefaas.js
INTEROP_DIR := tests/interop
INTEROP_STAMP := $(INTEROP_DIR)/node_modules/.installed
PYTEST_ARGS ?=

export SLS_TELEMETRY_DISABLED := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: setup test test-fast test-tf lint demo build package bundle-sizes clean

setup: $(PY_STAMP) $(if $(wildcard package.json),$(NODE_STAMP)) $(JS_BUNDLE) $(INTEROP_STAMP) chromium

$(PY_STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "litefaas needs Python >= 3.11; set PYTHON=python3.x")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e '.[runtime,build,gcp,azure,images,cli,dev]'
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The JavaScript client, bundled into the one ES module a page imports.
$(JS_STAMP): $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund
	@touch $@

# The independent Oblivious HTTP client and gateway of the interop tests (npm packages only).
$(INTEROP_STAMP): $(INTEROP_DIR)/package.json $(INTEROP_DIR)/package-lock.json
	cd $(INTEROP_DIR) && npm ci --no-audit --no-fund
	@touch $@

$(JS_BUNDLE): $(JS_STAMP) $(JS_DIR)/build.mjs $(wildcard $(JS_DIR)/src/*.js)
	cd $(JS_DIR) && node build.mjs
	@touch $@

# Debian's chromium for the browser tests (Playwright drives it; no browser is downloaded).
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

test: setup
	cd $(JS_DIR) && node --test test/*.test.js
	HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(PY) -m pytest -m "not reliability" $(PYTEST_ARGS)

test-fast: setup
	$(PY) -m pytest -m "not tensorflow and not reliability" $(PYTEST_ARGS)

test-tf: setup
	$(PY) -m pytest -m tensorflow $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

build: setup
	$(VENV)/bin/litefaas build

package: setup
	$(VENV)/bin/litefaas package --cloud $(or $(CLOUD),aws)

bundle-sizes: setup
	$(PY) -m litefaas.benchmark.bundle_sizes

demo: setup
	$(VENV)/bin/litefaas demo

clean:
	rm -rf $(VENV) node_modules $(JS_DIR)/node_modules $(JS_DIR)/dist $(INTEROP_DIR)/node_modules .pytest_cache .mypy_cache .ruff_cache

# Load (20,000 sealed requests at concurrency 64 per local host), key rotation and killed workers
# under load, wrong configurations, and the fuzzer with more examples: about 6 minutes on 2 idle
# cores, so `make test` leaves the `reliability` tests out. Ends with: requests sent, faults injected,
# bad inputs tried, requests lost (must be 0). LITEFAAS_LOAD_REQUESTS and LITEFAAS_FUZZ_EXAMPLES scale it.
RELIABILITY_REPORT := build/reliability/report.jsonl
.PHONY: reliability
reliability: setup
	@rm -f $(RELIABILITY_REPORT)
	LITEFAAS_RELIABILITY_REPORT=$(RELIABILITY_REPORT) LITEFAAS_FUZZ_EXAMPLES=$${LITEFAAS_FUZZ_EXAMPLES:-300} \
		$(PY) -m pytest tests/reliability tests/functional/test_fuzz_providers.py $(PYTEST_ARGS)
