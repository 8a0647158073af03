# kehu: `make run` serves the app with demo data, `make test` runs the whole suite.
# Both set up everything they need on a fresh Debian machine first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTHON ?= $(shell command -v python3.11 || command -v python3)
DEBIAN_PACKAGES := fonts-noto-cjk libharfbuzz-subset0 poppler-utils chromium chromium-driver libpango-1.0-0 libpangoft2-1.0-0 postgresql-client
INSTANCE ?= instance

.PHONY: run test setup debs venv load bench clean

run: setup
	@if [ ! -f "$(INSTANCE)/master.key" ]; then KEHU_INSTANCE=$(INSTANCE) $(VENV)/bin/kehu init --demo; fi
	KEHU_INSTANCE=$(INSTANCE) $(VENV)/bin/kehu run --host 127.0.0.1 --port 5000

test: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider

setup: debs venv

# Debian packages: CJK fonts and HarfBuzz's subsetter for PDFs, poppler to read PDFs back in the
# tests, Chromium for the browser tests, the PostgreSQL client tools (pg_dump, pg_restore) for
# `kehu backup` and `kehu restore` on PostgreSQL. Installed only when missing.
debs:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml tests/fixtures/kehu-notices/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[test]"
	$(PIP) install -q -e tests/fixtures/kehu-notices
	touch $@

venv: $(VENV)/.installed


# Load test, not part of `make test` (bench/README.md): 100 simulated users, signed in first, with
# 1 s think time for 60 s against gunicorn on 127.0.0.1, SQLite; also PostgreSQL when
# LOAD_PG names a database whose public schema may be dropped,
# e.g. make load LOAD_PG=postgresql+psycopg://postgres@127.0.0.1:5432/kehu_load
LOAD_ARGS ?= --users 100 --think 1 --sign-in-first --seconds 60
LOAD_PG ?=
load: setup
	$(PY) bench/load.py $(LOAD_ARGS)
	@if [ -n "$(LOAD_PG)" ]; then echo "$(PY) bench/load.py $(LOAD_ARGS) --database $(LOAD_PG)"; \
	  $(PY) bench/load.py $(LOAD_ARGS) --database "$(LOAD_PG)"; fi

# Benchmarks, not part of `make test`: 10k and 100k customers (BENCH_ARGS=--million adds 1M)
# against a bare baseline; wrk (Debian) drives the load and is installed when missing.
BENCH_ARGS ?=
bench: setup
	@command -v wrk >/dev/null 2>&1 || { echo "installing Debian package: wrk"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }; }
	$(PY) bench/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
