# The interface to Luster: CI, pre-commit and people all call these targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: all run test lint typecheck migrate services venv browser valgrind wrk bench chaos fuzz lock clean cluster cluster-stop

all: lint typecheck test

# Both locks, hash-checked: the runtime one (all the image gets) and the development one (a superset, same pins).
$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@# The lock's own pip first: an older one (pip 23) refuses a locked package asked for with an extra
	@# (pytest-cov wants coverage[toml]) once a newer release of it is published.
	awk '/^pip==/ {found=1} found {print} found && !/\\$$/ {exit}' requirements-dev.lock > $(VENV)/pip.lock
	$(PY) -m pip install -q --require-hashes -r $(VENV)/pip.lock
	$(PY) -m pip install -q --require-hashes -r requirements.lock -r requirements-dev.lock
	touch $(STAMP)

venv: $(STAMP)

# The drain benchmark's baselines (Dramatiq, Celery) on top, hash-checked too; never in the service image.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) requirements-bench.lock
	$(PY) -m pip install -q --require-hashes -r requirements.lock -r requirements-dev.lock -r requirements-bench.lock
	touch $(BENCH_STAMP)

services:
	@scripts/ensure-services.sh

migrate: venv services
	$(PY) -m shared.migrate

## Run the whole stack on embedded defaults: api :8000, worker, monitor :8001.
run: venv services migrate
	@PY=$(PY) scripts/run-stack.sh

## A local cluster for failover tests: three RabbitMQ nodes (5681-5683), a PostgreSQL primary (5442) with a synchronous standby (5443).
cluster:
	@scripts/cluster.sh start
	@echo 'Point the stack at it: eval "$$(scripts/cluster.sh env)" && make run'

## Stop the local cluster and remove all of it (data, config, the PostgreSQL clusters).
cluster-stop:
	@scripts/cluster.sh stop

# A Debian package a target needs, installed when its command is missing (as root, with apt-get), or else a
# message saying what to install: $(call debian,command,package,what it is for).
debian = command -v $(1) >/dev/null || { \
	  command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] || { echo "luster: install $(2) (Debian: apt-get install $(2)) $(3)" >&2; exit 1; }; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; }

# Debian's Chromium for the dashboard's browser tests (Playwright drives it; it never downloads a browser).
browser:
	@$(call debian,chromium,chromium,for the browser tests)

# Debian's valgrind: the benchmarks count instructions with callgrind, which machine noise cannot move.
valgrind:
	@$(call debian,valgrind,valgrind,for the benchmarks)

# Debian's wrk: the ingest benchmark's load, from a C client that leaves the cores to the servers.
wrk:
	@$(call debian,wrk,wrk,for the benchmarks)

## Run every test against the real PostgreSQL and RabbitMQ.
test: venv services browser
	$(PY) -m pytest -p no:cacheprovider --cov --cov-report=term

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy shared services tests bench client

bench: venv $(BENCH_STAMP) services migrate valgrind wrk
	$(PY) -m bench

## The fault-injection suite at full size (200 jobs per scenario, 2,000 for the backlog); its table also goes into docs/reliability.md.
chaos: venv services
	@status=0; CHAOS_JOBS=200 CHAOS_BACKLOG_JOBS=2000 $(PY) -m pytest tests/chaos -m chaos -p no:cacheprovider || status=$$?; \
	CHAOS_JOBS=200 $(PY) -m tests.chaos.report --update-docs --quiet; exit $$status

## Schemathesis against a real api with a real key, every check, 1,000 examples an operation (make test runs 8).
fuzz: venv services
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-100} $(PY) -m pytest tests/api/test_fuzz.py -p no:cacheprovider -s

## Re-resolve the locks from pyproject.toml (pins already in them are kept where they still fit).
COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras \
	--no-emit-index-url --no-emit-find-links
lock: venv
	$(COMPILE) --output-file requirements.lock pyproject.toml
	$(COMPILE) --allow-unsafe --extra dev --constraint requirements.lock --output-file requirements-dev.lock pyproject.toml
	$(COMPILE) --allow-unsafe --extra bench --constraint requirements-dev.lock --output-file requirements-bench.lock pyproject.toml

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
