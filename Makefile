# gridwatch: two commands on a fresh machine with only Python 3.11+:
#   make demo   - set up and run the main job on the embedded broker
#   make test   - set up and run the whole test suite (lint included), on the embedded broker
#                 and on a 3-broker Apache Kafka (Java 17 and Maven fetch it into var/kafka)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=
PYTEST_ARGS ?=

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install browser kafka demo test lint unit integration e2e bench clean lock

$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e ".[test,maps]"
	touch $(STAMP)

# refresh the lock (pip constraints) from the project's .venv after a dependency change
lock: $(STAMP)
	@{ head -3 requirements.lock; $(BIN)/pip freeze --exclude-editable | grep -v '^gridwatch'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

install: $(STAMP)

# the dashboard's browser test drives Debian's chromium (and a CJK font for the screenshots);
# the alert rules test runs promtool (Debian's prometheus package)
browser:
	@{ command -v chromium >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || { \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends \
	    chromium fonts-wqy-zenhei prometheus >/dev/null; }

# Apache Kafka's jars (org.apache.kafka:kafka_2.13 and its dependencies) into var/kafka, once;
# without java or mvn this says so and the Kafka tests skip (CI: GRIDWATCH_TEST_KAFKA=required fails)
kafka: $(STAMP)
	@$(BIN)/python -c "from pipeline.kafka_cluster import resolve_jars; print('Apache Kafka jars in', resolve_jars())" \
	  || [ "$$GRIDWATCH_TEST_KAFKA" != required ]

demo: $(STAMP)
	$(BIN)/gridwatch demo $(ARGS)

test: $(STAMP) browser kafka
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: $(STAMP) kafka
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

e2e: $(STAMP) browser
	$(BIN)/python -m pytest tests/e2e $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/gridwatch bench geo --json
	$(BIN)/gridwatch bench pipeline --json
	$(BIN)/gridwatch bench detectors --json
	$(BIN)/gridwatch bench replay --json

clean:
	rm -rf $(VENV) var .pytest_cache
