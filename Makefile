# kehu: `make run` serves the app with demo data, `make test` runs the whole suite.
# Both set up everything they need on a fresh Debian machine first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PYTHON ?= $(shell command -v python3.11 || command -v python3)
DEBIAN_PACKAGES := fonts-noto-cjk libharfbuzz-subset0 poppler-utils chromium chromium-driver libpango-1.0-0 libpangoft2-1.0-0
INSTANCE ?= instance

.PHONY: run test setup debs venv translations load bench clean

run: setup
	@if [ ! -f "$(INSTANCE)/master.key" ]; then KEHU_INSTANCE=$(INSTANCE) $(VENV)/bin/kehu init --demo; fi
	KEHU_INSTANCE=$(INSTANCE) $(VENV)/bin/kehu run --host 127.0.0.1 --port 5000

test: setup
	$(VENV)/bin/pytest -q -p no:cacheprovider

setup: debs venv translations

# Debian packages: CJK fonts and HarfBuzz's subsetter for PDFs, poppler to read PDFs back in the
# tests, Chromium for the browser tests. Installed only when missing.
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

translations: venv
	@$(VENV)/bin/pybabel compile -q -d translations -f 2>/dev/null || $(VENV)/bin/pybabel compile -d translations -f
	@for d in modules/*/translations; do [ -d "$$d" ] && $(VENV)/bin/pybabel compile -q -d "$$d" -f; done; true

load: setup
	$(PY) bench/load.py

bench: setup
	$(PY) bench/bench.py

clean:
	rm -rf $(VENV) .pytest_cache
