# The documented commands. Each target sets up what it needs, idempotently.
#   make demo   set up, then train the digits network on the local engine
#   make test   set up, then lint, type-check and run every test
#   make bench  set up, then measure time and cost per epoch, data larger than any Lambda,
#               runs through random faults and killed runs resumed
#               (docs/benchmarks.md)
#   make synth  set up, then `cdk synth` the stack (cdk-nag checks included)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.stepnet-base      # the package: enough for the demo
FULL := $(VENV)/.stepnet-full      # plus test, lint and CDK dependencies
NODE_STAMP := node_modules/.stepnet-installed
# Node.js 22 LTS (package.json) first on every target's PATH: the CDK CLI, the jsii runtime under
# aws-cdk-lib and asl-validator run on it, not on whatever Node the machine has.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
# Debian's chromium, for the run report's browser test (tests/engine/test_report.py)
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600

.PHONY: setup demo test lint unit bench synth clean chromium

setup: $(FULL)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip

$(BASE): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(FULL): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,infra,bench]"
	touch $@ $(BASE)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# installed only when missing (the target is the file); the lists are refreshed first, as a new
# machine's may be stale
chromium: $(CHROMIUM)
$(CHROMIUM):
	$(APT) update -qq
	$(APT) install -y -qq chromium
	test -x $@

demo: $(BASE)
	$(BIN)/stepnet local examples/digits.json --out out/digits-demo

lint: $(FULL)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(FULL) $(NODE_STAMP) $(CHROMIUM) lint
	$(BIN)/pytest -n 2 --dist loadfile

unit: $(FULL)
	$(BIN)/pytest tests/unit -q

bench: $(FULL)
	$(BIN)/python -m bench
	$(BIN)/python -m bench.large
	$(BIN)/python -m bench.faults
	$(BIN)/python -m bench.kills
	$(BIN)/python -m bench.demo

synth: $(FULL) $(NODE_STAMP)
	npx cdk synth --quiet

clean:
	rm -rf $(VENV) node_modules cdk.out out .pytest_cache .mypy_cache .ruff_cache
