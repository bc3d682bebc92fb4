# The documented commands. Each target sets up what it needs, idempotently.
#   make demo   set up, then train the digits network on the local engine
#   make test   set up, then lint, type-check and run every test
#   make bench  set up, then measure time and cost per epoch (docs/benchmarks.md)
#   make synth  set up, then `cdk synth` the stack (cdk-nag checks included)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stepnet-installed
NODE_STAMP := node_modules/.stepnet-installed

.PHONY: setup demo test lint unit bench synth clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,infra]"
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: $(STAMP)
	$(BIN)/stepnet local examples/digits.json --out out/digits-demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(STAMP) $(NODE_STAMP) lint
	$(BIN)/pytest -n 2 --dist loadfile

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

bench: $(STAMP)
	$(BIN)/python -m stepnet.bench

synth: $(STAMP) $(NODE_STAMP)
	npx cdk synth --quiet

clean:
	rm -rf $(VENV) node_modules cdk.out out .pytest_cache .mypy_cache .ruff_cache
