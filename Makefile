# Kuzet's commands. The README's two: `make demo` and `make test`.
# Each sets up what it needs on a fresh machine (Python venv, Kafka jars via
# Maven, the local broker) and stops the broker when it is done.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TOOLS  := .venv-tools
KAFKA  := deploy/kafka/kafka.sh

.PHONY: demo test setup lint kafka-up kafka-down bench clean

# The app's environment (editable install with dev extras).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

# Tools kept apart from the app: check-jsonschema needs a newer click than faust allows.
$(TOOLS)/.installed:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q --disable-pip-version-check 'check-jsonschema>=0.29'
	touch $@

# Debian's prometheus and prometheus-alertmanager (promtool, amtool and both
# servers, for the deploy/ and end-to-end tests), installed when missing with
# their system services left stopped: they would take the Kafka controller's 9093.
setup: $(VENV)/.installed $(TOOLS)/.installed
	$(KAFKA) fetch
	scripts/install-prometheus.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Demo: local broker, a live worker, a few events, the alerts as they arrive.
demo: setup
	scripts/with-kafka.sh $(PY) scripts/demo.py

# Every test: lint, compose file against the compose spec, unit, agent and
# integration tests (the latter against the real local broker; they fail, not
# skip, when it is missing).
test: setup lint
	$(TOOLS)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	KUZET_REQUIRE_BROKER=1 scripts/with-kafka.sh $(PY) -m pytest

kafka-up:
	$(KAFKA) start

kafka-down:
	$(KAFKA) stop

bench: setup
	$(PY) -m bench.decode
	$(PY) -m bench.backtest
	$(PY) -m bench.state
	scripts/with-kafka.sh $(PY) -m bench.live

clean:
	$(KAFKA) reset || true
	rm -rf $(VENV) $(TOOLS) .kuzet .pytest_cache .ruff_cache *.egg-info
