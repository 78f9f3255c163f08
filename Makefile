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
# papermill through rmapwalk.analysis.execute: the kernel is shut down on SIGTERM/SIGINT
# (papermill's own command leaves it running, computing, when it is sent SIGTERM), its
# sockets are private (IPC), and a failed or interrupted notebook is kept, marked, in
# build/failed-notebooks/ instead of the book's folder.
EXECUTE := $(BIN)python -m rmapwalk.analysis.execute --failed build/failed-notebooks
JB_FLAGS := -W -n --keep-going

.PHONY: test-kernels help env book notebooks test run clean kernels traces traces-plan FORCE browser vm-packages verify-data fuzz-campaign

help:
	@echo "make book    environment, notebooks (papermill) into $(GENERATED)/, book into book/_build/html (and its PDF when chromium is there)"
	@echo "make pdf     the book as one PDF, book/_build/html/rmapwalk.pdf (headless Chromium)"
	@echo "make test    environment, then pytest"
	@echo "make run NB=skip-ratio PARAMS=\"-p vmas 10,100\"   one notebook into build/runs/ (unknown parameters refused)"
	@echo "make clean   remove generated notebooks and the built book (not build/analysis)"
	@echo "make traces  capture data/dataset.yaml's runs on the real kernels (Snakemake); make fuzz-campaign: the fuzz campaign into data/fuzz/"

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
# Every data file is a prerequisite too (an edited walks.csv re-executes the notebooks, whose
# reader then refuses it), and the data set is verified first (rmapwalk verify: checksums,
# places, scenarios, missing and extra runs), so a tampered data set fails `make book` at once
# with the file named.
DATA_FILES := $(shell find data kernel-config -type f 2>/dev/null | sed 's/ /\\ /g')
$(GENERATED)/%.ipynb: notebooks/%.ipynb $(STAMP) $(shell find src -name '*.py') $(DATA_FILES) | verify-data $(GENERATED)
	$(EXECUTE) --cwd notebooks $< $@

verify-data: $(STAMP)
	$(BIN)rmapwalk verify data/traces
	$(BIN)rmapwalk verify data/programs --scenarios data/workloads
	$(BIN)rmapwalk conditions verify
	$(BIN)rmapwalk paths verify
	$(BIN)python -m rmapwalk.analysis.published

# What `make book` adds to the executed notebooks (rmapwalk.analysis.provenance):
# - the data set as one deterministic archive, downloadable from the provenance appendix;
# - the appendix's "how this book was built" (commit, data digest, the archive's sha256,
#   parameters), rewritten on every build since the commit can change without any
#   prerequisite changing;
# - the front page's verdict, taken from what the executed claim notebook glued.
.PHONY: pdf print-pdf book-config
ARCHIVE := $(GENERATED)/rmapwalk-data.tar.gz
$(ARCHIVE): $(DATA_FILES) $(STAMP) | $(GENERATED)
	$(BIN)python -m rmapwalk.analysis.provenance archive $@

$(GENERATED)/build-info.md: $(EXECUTED) $(ARCHIVE) FORCE
	$(BIN)python -m rmapwalk.analysis.provenance build-info $@ $(GENERATED)

$(GENERATED)/verdict.md: $(GENERATED)/claim.ipynb
	$(BIN)python -m rmapwalk.analysis.provenance verdict $@ $<

# the patches page's table of kernels, from kernel-config/kernels.yaml
$(GENERATED)/kernels.md: kernel-config/kernels.yaml $(STAMP) | $(GENERATED)
	$(BIN)python -m rmapwalk.analysis.provenance kernels $@

# The repository button's URL: REPO_URL=https://... , by default the git remote `origin` (if
# any); with one, the book is built from a copy of _config.yml that carries it.
# Only a remote that is a web address of the form https://host/owner/repo is used (a clone of a
# local folder has a path as its origin, which the theme's button cannot take).
REPO_URL ?= $(shell git remote get-url origin 2>/dev/null | sed -E 's|^git@([^:]+):|https://\1/|; s|\.git$$||' | grep -E '^https?://[^/]+/[^/]+/[^/]+$$')
BOOK_CONFIG := $(if $(strip $(REPO_URL)),--config $(GENERATED)/_config.yml,)
book-config: | $(GENERATED)
	@if [ -n "$(strip $(REPO_URL))" ]; then \
	  sed 's|^\(  url: \).*# REPO_URL$$|\1$(REPO_URL)  # REPO_URL|' book/_config.yml > $(GENERATED)/_config.yml; fi

FORCE:

$(GENERATED):
	mkdir -p $@

notebooks: $(EXECUTED)

# The PDF: the book as one HTML page (singlehtml), printed by headless Chromium without its
# header and footer (they would show the local file path); page numbers and the running title
# come from the book's print style (book/_static/custom.css, @page), into the HTML site, where
# the front page links it.  `make book` prints it
# too when chromium is there (`make browser` installs it as root).
PDF := book/_build/html/rmapwalk.pdf
define print-pdf
	$(BIN)jupyter-book build book/ --builder singlehtml $(JB_FLAGS) $(BOOK_CONFIG)
	mkdir -p $(dir $(PDF))
	timeout 300 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
	  --no-first-run --disable-background-networking --run-all-compositor-stages-before-draw \
	  --virtual-time-budget=20000 --no-pdf-header-footer --print-to-pdf=$(PDF).part \
	  file://$(CURDIR)/book/_build/singlehtml/index.html 2>/dev/null
	mv $(PDF).part $(PDF)
	@echo "pdf: $(PDF)"
endef

book: $(EXECUTED) $(GENERATED)/build-info.md $(GENERATED)/verdict.md $(GENERATED)/kernels.md book-config
	$(BIN)jupyter-book build book/ $(JB_FLAGS) $(BOOK_CONFIG)
	@echo "book: book/_build/html/index.html"
	@if command -v chromium >/dev/null; then $(MAKE) --no-print-directory print-pdf; \
	else echo "book: no chromium, no PDF (make browser installs it as root)"; fi

pdf: $(EXECUTED) $(GENERATED)/build-info.md $(GENERATED)/verdict.md $(GENERATED)/kernels.md book-config
	$(print-pdf)

# the printing alone, for `make book` (checked for chromium when its recipe runs, which may
# be after `make browser` installed it in the same make)
print-pdf:
	$(print-pdf)

# --- one rerun with other parameters ---------------------------------------------------
# Unknown parameter names are refused before anything runs; the output is
# build/runs/<NB>-<time>-<pid>.ipynb, or <...>-FAILED.ipynb if a cell failed or the run was
# interrupted (rmapwalk.analysis.execute).
NB ?=
PARAMS ?=
run: $(STAMP)
	@test -n "$(NB)" || { echo "make run: give NB=<name>, one of: $(notdir $(basename $(NOTEBOOKS)))" >&2; exit 2; }
	@test -f notebooks/$(NB).ipynb || { echo "make run: no notebooks/$(NB).ipynb" >&2; exit 2; }
	$(BIN)python -m rmapwalk.analysis.execute --cwd notebooks notebooks/$(NB).ipynb build/runs $(PARAMS)

# --- tests ------------------------------------------------------------------------------
# The end-to-end VM tests need the kernels: `kernels` builds them when the cache has none
# (about 8 min fresh, seconds when cached); SKIP_KERNELS=1 skips that (the VM tests then skip).
# tests/test_browser.py opens the built book in headless Chromium; chromium is installed
# here when root (CI: root, no terminal) and missing.  Without it that test is skipped.
# The browser test opens the built book, so the book is built first.
test: $(STAMP) $(if $(SKIP_KERNELS),,test-kernels) browser book
	$(BIN)python -m pytest $(PYTEST_ARGS)

browser:
	@if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y chromium chromium-driver || { apt-get update && apt-get install -y chromium chromium-driver; }; \
	fi

# --- kernels and traces (measurement) --------------------------------------------------
# kernels: build every kernel of kernel-config/kernels.yaml (each base's variants), cached
#          outside the checkout in $${RMAPWALK_CACHE:-~/.cache/rmapwalk}/kernels (about 8 min
#          fresh on 2 cores per base); a base's Debian source package is installed on demand.
#          KERNEL_BASES=6.12 builds one base only.
# traces:  capture the declared data set (data/dataset.yaml) in QEMU into build/traces.new
#          through the Snakemake workflow, resuming there after an interruption (finished
#          runs are kept), verify it, and only then replace data/traces (a failed capture
#          leaves data/traces alone).  `make traces-plan` is its dry run.
KERNEL_BASES ?= $$($(BIN)rmapwalk kernel list | cut -f1 | sort -u)
VM_PACKAGES := qemu-system-x86 busybox-static bc bison flex libelf-dev libssl-dev cpio dwarves gcc make

vm-packages:
	@missing=$$(for p in $(VM_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing \
	    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; }; \
	  else echo "make: install the Debian packages: $$missing" >&2; exit 2; fi; \
	fi

# test-kernels: only what the tests boot: the captured variants of the default base, and the two
# path variants the paths VM test boots (make test; the other base and the build-only variants
# are `make kernels`).
TEST_PATH_KERNELS := naive-paths merged-paths
test-kernels: $(STAMP) vm-packages
	for v in $$($(BIN)rmapwalk kernel list | awk -F'\t' -v b="$$($(BIN)python -c 'from rmapwalk import kernels; print(kernels.load().default_base)')" '$$1 == b && $$5 == "capture" {print $$2}') $(TEST_PATH_KERNELS); do \
	  $(BIN)rmapwalk kernel build --kernel $$v; done

kernels: $(STAMP) vm-packages
	for b in $(KERNEL_BASES); do $(BIN)rmapwalk kernel build --base $$b --kernel all; done

# The workflow (workflow/Snakefile): one job per run folder; CORES VMs at once; an interrupted
# `make traces` resumes in build/traces.new without redoing finished runs.
CORES ?= $(shell nproc 2>/dev/null || echo 1)
SNAKEMAKE = $(BIN)snakemake -s workflow/Snakefile --cores $(CORES) --resources kernel_build=1 \
	--config out=build/traces.new rmapwalk=$(BIN)rmapwalk

traces: $(STAMP) vm-packages
	$(SNAKEMAKE) --rerun-incomplete
	rm -rf data/traces.old && if [ -d data/traces ]; then mv data/traces data/traces.old; fi
	mv build/traces.new data/traces && rm -rf data/traces.old build/workflow/runs/traces.new
	@echo "traces: data/traces (commit it with its manifests)"

traces-plan: $(STAMP)
	$(SNAKEMAKE) --dry-run --quiet

# The fuzz campaign of data/fuzz/campaign.yaml (issue 7): every seed through `rmapwalk fuzz` on
# every captured kernel of the base (build/fuzz/campaign/<seed>/, resumable: a finished seed is
# not run again), then its summary into data/fuzz/<name>/ with a manifest (commit it).  About
# ten minutes on 2 cores (520 scenarios x 4 kernels, 112 boots); CI makes the plan's small `ci`
# campaign instead (tests/measure/test_fuzz_ci.py).
fuzz-campaign: $(STAMP) vm-packages
	$(BIN)rmapwalk fuzz-campaign --publish

clean:
	rm -rf $(GENERATED) book/_build
