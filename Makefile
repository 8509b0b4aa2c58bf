# eseal — every target does its own set-up on a fresh Debian machine.
# `make demo` runs the whole story; `make test` passes the tests.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := softhsm2 opensc poppler-utils libnss3-tools fonts-noto-cjk fonts-hanazono \
	p11-kit p11-kit-modules postgresql chromium
# `make cluster` also needs these; it installs them itself so `make test` stays lean.
CLUSTER_APT_PACKAGES := haproxy
CLUSTER_DIR ?= var/cluster
APT_STAMP := $(VENV)/.apt-ok
VENV_STAMP := $(VENV)/.installed
# axe-core (npm, pinned in package-lock.json) for the accessibility test; npm ci, never npm install
AXE_DIR := tests/browser/axe
AXE_STAMP := $(AXE_DIR)/node_modules/.installed
export DEBIAN_FRONTEND := noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_PROGRESS_BAR := off
PYTEST_ARGS ?=

.PHONY: setup test-setup test demo bench lint docs docs-pictures clean cluster cluster-stop cluster-load cluster-setup

setup: $(APT_STAMP) $(VENV_STAMP)

# Debian packages: installed only when one is missing, never prompting (chromium: the browser
# tests drive it through Playwright; `playwright install` is never run). Re-checked when
# this Makefile changes.
$(APT_STAMP): Makefile
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "eseal: installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO apt-get install -y -qq --no-install-recommends $$missing </dev/null >/dev/null; \
	fi
	@mkdir -p $(VENV) && touch $@

$(VENV_STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip </dev/null
	@$(PY) -m pip install -q -e '.[test]' </dev/null
	@touch $@

# Node and npm come from Debian (`nodejs npm`) unless some npm is already there (an image's
# own Node.js package ships npm and conflicts with Debian's); axe-core is installed exactly as
# the lock file says into tests/browser/axe/node_modules, re-done when the lock file changes.
$(AXE_STAMP): $(AXE_DIR)/package.json $(AXE_DIR)/package-lock.json $(APT_STAMP)
	@if ! command -v npm >/dev/null; then \
	  echo "eseal: installing Debian packages: nodejs npm"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm </dev/null >/dev/null; \
	fi
	@cd $(AXE_DIR) && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error </dev/null
	@touch $@

test-setup: setup $(AXE_STAMP)

# The suite runs twice: on SQLite (the embedded default), then on PostgreSQL (a throwaway
# server each pytest worker starts and removes itself: tests/pgkit.py).
test: test-setup
	@$(PY) -m ruff check eseal tests bench deploy
	@$(VENV)/bin/lint-imports
	ESEAL_ENV=test $(PY) -m pytest -n 2 $(PYTEST_ARGS)
	ESEAL_ENV=test ESEAL_TEST_DATABASE=postgresql $(PY) -m pytest -n 2 $(PYTEST_ARGS)

demo: setup
	ESEAL_ENV=demo $(PY) -m eseal.demo

bench: setup
	ESEAL_ENV=test $(PY) -m bench

lint: setup
	$(PY) -m ruff check eseal tests bench deploy
	$(VENV)/bin/lint-imports

# docs/errors.md from the error registry (eseal/error_codes.py); a test fails when it is stale
docs: setup
	$(PY) -m eseal.error_docs

# README pictures drawn from real seals (SoftHSM token, pdftoppm): the paging seal (骑缝章)
docs-pictures: setup
	ESEAL_ENV=test $(PY) -m bench.paging_picture docs/paging-seal.png

# The deployment shape on one machine: PostgreSQL, the CA token behind `p11-kit server`,
# three `eseal serve` replicas and HAProxy in front (README "Scale-out"). Foreground;
# Ctrl-C (or `make cluster-stop` from another shell) tears it down.
cluster-setup: setup
	@missing=""; for p in $(CLUSTER_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "eseal: installing Debian packages for the cluster:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO apt-get install -y -qq --no-install-recommends $$missing </dev/null >/dev/null; \
	fi
	@$(PY) -c "import psycopg" 2>/dev/null || $(PY) -m pip install -q -e '.[test,cluster]' </dev/null

cluster: cluster-setup
	$(PY) -m deploy.cluster up --dir $(CLUSTER_DIR)

cluster-stop:
	$(PY) -m deploy.cluster down --dir $(CLUSTER_DIR)

# The issue's must-show against a running `make cluster` (another shell).
cluster-load:
	ESEAL_ENV=test $(PY) -m deploy.load --dir $(CLUSTER_DIR)

clean:
	rm -rf var/demo .pytest_cache
