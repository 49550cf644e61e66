# Every target bootstraps what it needs: a fresh clone runs `make run` or `make test` as is.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 0.0.0.0
PORT ?= 5565
LOCK := deploy/container/requirements.txt

# Debian packages as binary=package: what `make stack` runs, and what the suite runs for real.
STACK_PACKAGES := prometheus=prometheus prometheus-alertmanager=prometheus-alertmanager \
	prometheus-pushgateway=prometheus-pushgateway
SYSTEM_PACKAGES := $(STACK_PACKAGES) promtool=prometheus amtool=prometheus-alertmanager \
	chromium=chromium docker-compose=docker-compose wrk=wrk \
	podman=podman runc=runc catatonit=catatonit mmdebstrap=mmdebstrap iptables=iptables

.PHONY: run test lint typecheck unit bench bench-profile stack clean system-packages prometheusrules chart lock

# The server's dependencies come from the image's hashed lock, so the tests run what it ships;
# setup.py and the .pyx sources build the compiled modules: a change to any rebuilds them.
$(VENV)/.run-installed: pyproject.toml $(LOCK) setup.py $(wildcard src/example_service/*/*.pyx)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --require-hashes -r $(LOCK)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[load]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.run-installed
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,load]'
	touch $@

# checkov and hadolint for tests/deploy/test_scanners.py, in a venv of their own (see the file).
SCANNERS_LOCK := tests/deploy/scanners-requirements.txt
$(VENV)/.scanners-installed: $(SCANNERS_LOCK) $(VENV)/.run-installed
	$(PYTHON) -m venv $(VENV)/scanners
	$(VENV)/scanners/bin/pip install -q --disable-pip-version-check -r $(SCANNERS_LOCK)
	touch $@

run: $(VENV)/.run-installed
	$(BIN)/example-service --host $(HOST) --port $(PORT)

system-packages:
	@tools/ensure-system-packages $(SYSTEM_PACKAGES)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check setup.py src tests bench tools deploy
	$(BIN)/ruff format --check setup.py src tests bench tools deploy

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

test: $(VENV)/.dev-installed $(VENV)/.scanners-installed system-packages lint typecheck
	$(BIN)/pytest

unit: $(VENV)/.dev-installed
	$(BIN)/pytest tests/unit

# The load generator, and the Go peer's toolchain and client library (built offline).
BENCH_PACKAGES := wrk=wrk taskset=util-linux go=golang-go \
	/usr/share/gocode/src/github.com/prometheus/client_golang=golang-github-prometheus-client-golang-dev

bench: $(VENV)/.dev-installed
	@tools/ensure-system-packages $(BENCH_PACKAGES)
	$(BIN)/python -m bench

# Instructions per request by object and function, counted by callgrind (steady on a busy
# machine, unlike time): the profile docs/performance.md quotes.
bench-profile: $(VENV)/.dev-installed
	@tools/ensure-system-packages taskset=util-linux valgrind=valgrind
	$(BIN)/python -m bench --profile

stack: $(VENV)/.run-installed
	@tools/ensure-system-packages $(STACK_PACKAGES)
	$(BIN)/example-service stack

# The operator overlay's PrometheusRule objects, regenerated from deploy/prometheus/rules.
prometheusrules: $(VENV)/.dev-installed
	$(BIN)/python tools/generate_prometheusrules.py

# The Helm chart, linted strictly and packaged to dist/example-service-VERSION.tgz (no helm
# binary: helm-python-sdk carries Helm as a library).
chart: $(VENV)/.dev-installed
	$(BIN)/python tools/package_chart.py

# The image's hashed locks, regenerated from pyproject.toml (tools/lock-image --upgrade bumps).
lock: $(VENV)/.dev-installed
	tools/lock-image

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache src/*.egg-info dist build \
		src/example_service/*/_*.c src/example_service/*/_*.so
