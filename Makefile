# The two commands a new user needs: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Dagster's home lives with the hub's other run-time files (HUB_HOME, default var/).
export DAGSTER_HOME := $(or $(HUB_HOME),$(CURDIR)/var)/dagster

.PHONY: demo dagster-home test ui sql lint format bench stop clean venv postgres system-deps

$(BIN)/.installed: requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python >= 3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

venv: $(BIN)/.installed

# System packages the tests need: Debian's PostgreSQL server (the DuckLake catalog in tests/lake).
system-deps:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "note: no PostgreSQL server; DuckLake tests will skip (apt-get install postgresql)"; fi; }

# The repo's dagster.yaml in DAGSTER_HOME, owner-only, unless an operator's file is there (kept
# as it is, checked for the pools): the rules of `hub demo` / `hub ui` (pipelines/dagster_instance.py).
dagster-home: venv
	$(BIN)/python -m pipelines.dagster_instance

# The demo profile: counties without HUB_<SLUG>_URL are served by the bundled simulator. A
# production deployment never sets it (production is the default: unconfigured counties are
# reported, never simulated).
demo: venv
	HUB_PROFILE=demo $(BIN)/hub demo

ui: venv
	HUB_PROFILE=demo $(BIN)/hub ui

sql: venv
	$(BIN)/hub sql

test: venv system-deps dagster-home
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	HUB_PROFILE=demo $(BIN)/dagster definitions validate -m pipelines.definitions
	$(BIN)/pytest -n 2 --dist loadgroup -q

lint: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The issue-13 table's main rows (bench/README.md): 洛南 vs dlt, the city full, the one-day
# incremental. Minutes on 2 cores; results in bench/results/*.json, never in the suite.
bench: venv
	$(BIN)/python bench/dlt_vs_hub.py --repeat 1 --dlt-runs parquet:append
	$(BIN)/python bench/sync_city.py --repeat 1
	$(BIN)/python bench/incremental_city.py

# A local PostgreSQL (Debian's package) for the DuckLake catalog, under var/postgres (as root:
# /var/tmp/hub-postgres-*, where the server's own user can reach it). `hub demo` starts it itself.
postgres: venv
	$(BIN)/python -m pipelines.lake.postgres start

stop:
	$(BIN)/hub stop-simulator

clean: stop
	-test -x $(BIN)/python && $(BIN)/python -m pipelines.lake.postgres stop >/dev/null 2>&1
	rm -rf var
