# rmapwalk: one entry point for a fresh machine.
#   make book   set up the environment, execute the notebooks, build the book
#   make test   set up the environment, run pytest
#   make run NB=<notebook> PARAMS="-p key value ..."   rerun one notebook elsewhere
# Set-up: inside an active environment ($VIRTUAL_ENV or $CONDA_PREFIX) that one is used;
# otherwise .venv is created with `python3 -m venv`.  `pip install -e '.[test]'` runs again
# only when pyproject.toml changed (a stamp file in the environment).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON ?= python3
ACTIVE_ENV := $(or $(VIRTUAL_ENV),$(CONDA_PREFIX))
ifeq ($(ACTIVE_ENV),)
  ENV_DIR := .venv
  BIN := $(ENV_DIR)/bin/
else
  ENV_DIR := $(ACTIVE_ENV)
  BIN := $(ACTIVE_ENV)/bin/
endif
STAMP := $(ENV_DIR)/.rmapwalk-installed

NOTEBOOKS := $(wildcard notebooks/*.ipynb)
GENERATED := book/_generated
EXECUTED := $(patsubst notebooks/%.ipynb,$(GENERATED)/%.ipynb,$(NOTEBOOKS))
PAPERMILL := $(BIN)papermill --kernel python3 --log-level WARNING --no-progress-bar
JB_FLAGS := -W -n --keep-going

.PHONY: help env book notebooks test run clean kernels traces

help:
	@echo "make book    environment, notebooks (papermill) into $(GENERATED)/, book into book/_build/html"
	@echo "make test    environment, then pytest"
	@echo "make run NB=skip-ratio PARAMS=\"-p vmas 10,100\"   one notebook into build/runs/"
	@echo "make clean   remove generated notebooks and the built book (not build/analysis)"

# --- environment -------------------------------------------------------------------------
# On Debian, `python3 -m venv` needs python3-venv; install it when root (CI: no terminal).
$(ENV_DIR)/bin/python:
	@if [ -z "$(ACTIVE_ENV)" ]; then \
	  if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null && [ "$$(id -u)" = 0 ] \
	     && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv; \
	  fi; \
	  $(PYTHON) -m venv $(ENV_DIR); \
	fi

$(STAMP): pyproject.toml | $(ENV_DIR)/bin/python
	$(BIN)python -m pip install --upgrade pip >/dev/null
	$(BIN)python -m pip install -e '.[test]'
	touch $@

env: $(STAMP)

# --- the book ----------------------------------------------------------------------------
# Notebooks run with their default parameters, which are the book's values.  Simulations
# are cached in build/analysis/ (see rmapwalk.analysis.simulation), so reruns only render.
$(GENERATED)/%.ipynb: notebooks/%.ipynb $(STAMP) $(shell find src -name '*.py') | $(GENERATED)
	$(PAPERMILL) --cwd notebooks $< $(@D)/.$*.part.ipynb && mv $(@D)/.$*.part.ipynb $@

$(GENERATED):
	mkdir -p $@

notebooks: $(EXECUTED)

book: $(EXECUTED)
	$(BIN)jupyter-book build book/ $(JB_FLAGS)
	@echo "book: book/_build/html/index.html"

# --- one rerun with other parameters ---------------------------------------------------
NB ?=
PARAMS ?=
run: $(STAMP)
	@test -n "$(NB)" || { echo "make run: give NB=<name>, one of: $(notdir $(basename $(NOTEBOOKS)))" >&2; exit 2; }
	@test -f notebooks/$(NB).ipynb || { echo "make run: no notebooks/$(NB).ipynb" >&2; exit 2; }
	mkdir -p build/runs
	out=build/runs/$(NB)-$$(date +%Y%m%dT%H%M%S).ipynb; \
	$(PAPERMILL) --cwd notebooks notebooks/$(NB).ipynb $$out $(PARAMS); \
	echo "run: $$out"

# --- tests ------------------------------------------------------------------------------
test: $(STAMP)
	$(BIN)python -m pytest $(PYTEST_ARGS)

# --- kernels and traces (measurement; targets added by the measurement side) -------------
# kernels: build the baseline / patched / naive kernels (rmapwalk kernel build).
# traces:  capture walks in the VM (rmapwalk capture) into data/traces/.
# >>> measurement targets go here (replace these placeholders) <<<
kernels traces:
	@echo "make $@: not written yet; see kernel-config/README.md for the commands" >&2; exit 2

clean:
	rm -rf $(GENERATED) book/_build
