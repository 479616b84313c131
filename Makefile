# litefaas: `make demo` runs the main job, `make test` the test suite.
# Both set up what they need first (a virtualenv in .venv, npm packages), idempotently.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PYTEST_ARGS ?=

export SLS_TELEMETRY_DISABLED := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup test test-fast test-tf lint demo build package bundle-sizes clean

setup: $(PY_STAMP) $(if $(wildcard package.json),$(NODE_STAMP))

$(PY_STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "litefaas needs Python >= 3.11; set PYTHON=python3.x")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e '.[build,gcp,azure,dev]'
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

test: setup
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
	$(PY) bench/bundle_sizes.py

demo: setup
	$(VENV)/bin/litefaas demo

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache

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
