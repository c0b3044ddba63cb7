# gridwatch: two commands on a fresh machine with only Python 3.11+:
#   make demo   - set up and run the main job on the embedded broker
#   make test   - set up and run the whole test suite (lint included)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install demo test lint unit integration bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/gridwatch demo $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/gridwatch bench geo --json
	$(BIN)/gridwatch bench pipeline --json
	$(BIN)/gridwatch bench detectors --json
	$(BIN)/gridwatch bench replay --json

clean:
	rm -rf $(VENV) var .pytest_cache
