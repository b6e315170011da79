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

E2E := tests/e2e
E2E_STAMP := $(E2E)/node_modules/.package-lock.json

.PHONY: help install demo test lint typecheck validate build bench clean chromium e2e-deps e2e

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

test: lint typecheck validate build e2e-deps ## Lint, type-check, validate and build the template, run every test
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

chromium: ## Debian's Chromium for the e2e tests, installed if missing (needs root; CI is root)
	@if command -v chromium >/dev/null 2>&1; then \
	  true; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "!! chromium is missing and installing it needs root: the e2e tests will be skipped"; \
	elif ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then \
	  echo "!! apt-get could not install chromium: the e2e tests will be skipped"; \
	fi

$(E2E_STAMP): $(E2E)/package.json $(E2E)/package-lock.json
	@echo "==> installing the e2e tests' npm packages (aws-rum-web, playwright-core, esbuild)"
	cd $(E2E) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

e2e-deps: chromium $(E2E_STAMP) ## Chromium and the npm packages the e2e tests use

e2e: $(STAMP) e2e-deps ## Only the end-to-end tests (the real aws-rum-web client in headless Chromium)
	$(BIN)/pytest tests/e2e

clean: ## Remove the virtual environment, build output and benchmark results
	rm -rf $(VENV) .aws-sam .bench .mypy_cache .pytest_cache .ruff_cache $(E2E)/node_modules $(E2E)/.build
