# Kuzet's commands. The README's two: `make demo` and `make test`.
# Each sets up what it needs on a fresh machine (Python venv, Kafka jars via
# Maven, the local broker) and stops the broker when it is done.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TOOLS  := .venv-tools
KAFKA  := deploy/kafka/kafka.sh

.PHONY: demo test setup lint lock kafka-up kafka-down bench clean

# What every install path installs: the tested versions, hash-checked. `make lock`
# writes them (see the README's "Dependencies"); a change of lock reinstalls.
LOCK       := requirements.lock
DEV_LOCK   := requirements-dev.lock
TOOLS_LOCK := requirements-tools.lock
PIP_FLAGS  := -q --disable-pip-version-check

# The app's environment: exactly the dev lock (a new venv, so nothing left over from
# an older lock), then Kuzet itself, editable, without resolving anything again.
$(VENV)/.installed: pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv --clear $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --require-hashes -r $(DEV_LOCK)
	$(PY) -m pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

# Tools kept apart from the app: check-jsonschema pins its own click and jsonschema
# stack; uv writes the locks.
$(TOOLS)/.installed: $(TOOLS_LOCK)
	$(PYTHON) -m venv --clear $(TOOLS)
	$(TOOLS)/bin/pip install $(PIP_FLAGS) --require-hashes -r $(TOOLS_LOCK)
	touch $@

# Refresh the locks from pyproject.toml and requirements-tools.in, for CPython 3.11 on
# x86_64 Linux (CI's and the image's). Versions already locked are kept when they
# still fit; `make lock UPGRADE=1` moves everything to the newest that fits. Then run
# `make test` and commit the locks with what made them change.
UV_COMPILE := $(TOOLS)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --custom-compile-command 'make lock' \
	$(if $(UPGRADE),--upgrade)
lock: $(TOOLS)/.installed
	$(UV_COMPILE) pyproject.toml -o $(LOCK)
	$(UV_COMPILE) pyproject.toml --extra dev -c $(LOCK) -o $(DEV_LOCK)
	$(UV_COMPILE) requirements-tools.in -o $(TOOLS_LOCK)

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

# Every test: lint, compose file against the compose spec, unit, processor and
# integration tests (the latter against the real local broker; they fail, not
# skip, when it is missing). helm is built into .tools/bin first, when missing, for
# tests/deploy/test_helm.py (scripts/check-helm.sh).
test: setup lint
	$(PY) scripts/versions.py
	$(TOOLS)/bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
	scripts/check-helm.sh --install
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
	rm -rf $(VENV) $(TOOLS) .tools .kuzet .pytest_cache .ruff_cache .hypothesis *.egg-info
