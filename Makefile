# Two commands do all set-up on a fresh machine with python3 and make:
#   make demo   - create .venv, install, run the demo on http://127.0.0.1:8080
#   make test   - create .venv, install with test extras, ruff + import-linter + pytest
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONNECTORS := $(wildcard connectors/*/pyproject.toml)
CONNECTOR_DIRS := $(patsubst %/pyproject.toml,%,$(CONNECTORS))
EDITABLES := -e . $(foreach d,$(CONNECTOR_DIRS),-e $(d))
PYTEST_ARGS ?=

.PHONY: demo test lint bench install install-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(CONNECTORS) | $(PY)
	$(PY) -m pip install --quiet $(EDITABLES)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(VENV)/bin/ciba-gateway demo

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) var
