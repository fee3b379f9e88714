# The README's two commands bootstrap themselves: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
PORT ?= 8787
CONFIG ?=
# `sam build` for the python3.12 runtime needs that interpreter on PATH; pyenv provides it here.
export PYENV_VERSION ?= 3.11.7:3.12.1:3.13.0
export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint sam pytest bench-coldstart clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# SAM CLI pins its own boto3/botocore ranges, so it lives in a venv of its own.
$(SAM):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q aws-sam-cli

run: $(BIN)/.installed
	$(BIN)/ctxgate local --port $(PORT) $(if $(CONFIG),--config $(CONFIG))

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/cfn-lint template.yaml

sam: $(SAM)
	$(SAM) validate --lint
	$(SAM) build --build-dir .aws-sam/build --cached --cache-dir .aws-sam/cache

pytest: $(BIN)/.installed
	$(BIN)/pytest -q

test: lint sam pytest

bench-coldstart: $(BIN)/.installed
	$(BIN)/ctxgate bench coldstart

clean:
	rm -rf .aws-sam .pytest_cache .ruff_cache
