# RUM Guard: every target installs what it needs into .venv first, so each works on a fresh clone.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
REGION := us-east-1
# The embedded AWS needs no account; these keep boto3 and SAM from looking for one.
export AWS_DEFAULT_REGION ?= $(REGION)
export AWS_ACCESS_KEY_ID ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
export SAM_CLI_TELEMETRY := 0
export POWERTOOLS_TRACE_DISABLED := 1

.PHONY: help install demo test lint typecheck validate build bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@echo "==> creating $(VENV) with $(PYTHON) and installing RUM Guard with its tools"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

install: $(STAMP) ## Create .venv and install everything (the other targets do this themselves)

demo: $(STAMP) ## Run the demo on the embedded AWS
	$(BIN)/rumguard demo

test: lint typecheck validate build ## Lint, type-check, validate and build the template, run the tests
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(STAMP) ## ruff (with the domain's banned imports) and the format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy --strict
	$(BIN)/mypy lambdas chalice_app tests

validate: $(STAMP) ## sam validate --lint and cfn-lint, offline
	$(BIN)/sam validate --lint --template template.yaml --region $(REGION)
	$(BIN)/cfn-lint template.yaml

# .venv/bin first on PATH: lambdas/Makefile installs the layer with `python3 -m pip` of the environment sam runs in.
build: $(STAMP) ## sam build (BuildMethod: makefile, no local Lambda Python needed)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/sam build --template template.yaml --build-dir .aws-sam/build

bench: $(STAMP) ## Benchmarks: ingest throughput against the decode ceiling, memory per 1 MB batch
	$(BIN)/rumguard bench

clean: ## Remove the virtual environment, build output and benchmark results
	rm -rf $(VENV) .aws-sam .bench .mypy_cache .pytest_cache .ruff_cache
