# Two commands for a newcomer: `make demo` and `make test`. `make setup` is idempotent and fast
# when nothing changed (a stamp file records the pyproject it installed).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# pytest-xdist workers for make test (one per core; on 2 cores the suite takes about 11.6 min with
# two workers, its summed test time about 22 min, and longer with three: it is bound by CPU);
# TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= auto

.PHONY: setup lock system-deps demo test test-durations test-fast lint format ui sandbox bench bench-market bench-serving bench-production bench-loop bench-cli bench-recorded bench-monitoring bench-automation clean-state help

help:
	@echo "make setup   create .venv and install everything (idempotent)"
	@echo "make demo    run the last session offline on the embedded defaults, print where outputs are"
	@echo "make test    run every test tier (installs PostgreSQL/Chromium/docker-compose if root)"
	@echo "make test-fast  the unit tier only: no services needed, a minute or two"
	@echo "make test-durations  make test, measuring each file's time into tests/durations.json"
	@echo "make lint    ruff check + format check + import contracts + secret scan"
	@echo "make lock    refresh requirements.lock from pyproject.toml"
	@echo "make ui      Dagster UI on http://127.0.0.1:3000"
	@echo "make bench   benchmarks (results in benchmarks/results/)"

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Every dependency comes from the lock, exactly (versions and hashes, ludwig included), installed
# without resolution; then the platform itself. `make lock` refreshes the lock from pyproject.toml.
$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	@echo "setup 1/2: the locked dependencies ($(LOCK); CPU torch is the largest download: minutes on a fresh machine)"
	@$(BIN)/pip install --quiet --no-deps --require-hashes -r $(LOCK)
	@echo "setup 2/2: the platform itself (editable; its dependencies came from the lock)"
	@$(BIN)/pip install --quiet --no-deps -e .
	@touch $(STAMP)
	@echo "setup done: .venv is ready"

setup: $(STAMP)

demo: setup
	$(BIN)/mlops run

# Resolve pyproject.toml into requirements.lock and the images' subsets, keeping locked versions
# that still fit (`make lock LOCK_ARGS=--upgrade`: the newest its ranges allow); review the diff,
# then `make setup`.
lock: setup
	$(BIN)/python deploy/lock.py $(LOCK_ARGS)

system-deps:
	@bash .ci/system-deps.sh

# The suites keep bytecode caches even where the environment sets PYTHONDONTWRITEBYTECODE: each of
# their hundred-odd Python processes (workers, `mlops` commands, servers, fork servers) would
# otherwise compile the platform's modules again, and each worker rewrite and compile the test
# modules (collecting the suite took 9.6 s, 6.0 s with the caches).
PYTEST := PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest

# Every tier on every core, the longest files first (tests/durations.json); the 20 slowest tests
# are listed at the end.
test: setup system-deps
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20

# The whole suite as `make test` runs it, writing each file's seconds to tests/durations.json.
test-durations: setup system-deps
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --store-durations

# The unit tier: no network, no services, no training; runs anywhere in a minute or two.
test-fast: setup
	$(PYTEST) -m unit -n auto --durations=10

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	BIN=$(BIN) bash .ci/secret-scan.sh

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

ui: setup
	$(BIN)/mlops ui

sandbox: setup
	$(BIN)/mlops sandbox serve

bench: bench-market bench-serving bench-production bench-loop bench-cli bench-recorded bench-monitoring bench-automation

bench-market: setup
	$(BIN)/python benchmarks/market_ingest.py

bench-serving: setup system-deps
	$(BIN)/python benchmarks/serving.py

bench-production: setup
	$(BIN)/python benchmarks/production_session.py

# Before/after sessions as partitions; SESSIONS=3 for a quick check (default 20).
bench-loop: setup system-deps
	$(BIN)/python benchmarks/daily_loop.py $(if $(SESSIONS),--sessions $(SESSIONS))

bench-cli: setup
	$(BIN)/python benchmarks/cli_startup.py

# The shipped models on recorded real history (the S&P 500, 1999-2018) and on the synthetic market.
bench-recorded: setup
	$(BIN)/python benchmarks/recorded_history.py

bench-monitoring: setup
	$(BIN)/python benchmarks/monitoring_workspace.py $(if $(SESSIONS),--sessions $(SESSIONS))

bench-automation: setup
	$(BIN)/python benchmarks/automation_tick.py

clean-state:
	rm -rf .mlops
