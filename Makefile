# Sentinel — the two commands: `make demo` (main job) and `make test` (whole suite).
# Both do all set-up on a fresh machine with Python 3.11, Java 17, Maven and make.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test stack-test install system-deps broker-artifacts lint typecheck bench clean stop

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Debian packages the tests use (Prometheus, Chromium, docker-compose); skipped when present.
system-deps:
	@if [ -f scripts/install-system-deps.sh ]; then bash scripts/install-system-deps.sh; fi

# The Kafka broker's jars from Maven Central, cached once under ~/.cache/sentinel/kafka.
broker-artifacts: install
	$(PY) -c "from sentinel.settings import Settings; from sentinel.infra.runtime import embedded_broker; embedded_broker(Settings()).ensure_artifacts()"

demo: install broker-artifacts
	$(VENV)/bin/sentinel demo

# tests/stack is in `tests`: the compose stack, started for real, when a Docker engine can be
# used (it starts a private dockerd as root); otherwise those tests skip and say why.
test: install system-deps broker-artifacts
	$(PY) -m pytest -q -p no:cacheprovider --durations=25 --doctest-modules sentinel schemas features drift training lifecycle stream_app dashboard cli tests

# The compose stack alone: images (local Debian stand-ins unless SENTINEL_STACK_IMAGES=official),
# docker-compose up, the quick start, two workers, faults, then everything removed.
stack-test: install system-deps broker-artifacts
	$(PY) -m pytest -q -p no:cacheprovider -rs tests/stack

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: install broker-artifacts
	$(PY) bench/run_all.py $(BENCH_ARGS)

stop:
	-$(VENV)/bin/sentinel kafka stop

clean: stop
	rm -rf .sentinel
