# pruninglab: `make run` executes every notebook headless, `make test` runs the tests.
# Both create (or update) the virtual environment .venv first.

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.pruninglab-installed
PROFILE ?= quick
# An extra index pip may take torch and torchvision from. On a laptop without an NVIDIA GPU,
# PyTorch's CPU-only wheels spare the several GB of CUDA libraries that PyPI's Linux torch
# pulls: make venv TORCH_INDEX=https://download.pytorch.org/whl/cpu (a new .venv; pip prefers
# the +cpu builds from there). Empty: PyPI's, or whatever pip's configuration says.
TORCH_INDEX ?=
# pytest-xdist workers for the tests: the CPUs in this process's affinity mask, at most 4.
JOBS    ?= $(shell $(PYTHON) -c "import os; print(min(4, len(os.sched_getaffinity(0)) \
             if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1))")
export PRUNINGLAB_RUNS ?= $(CURDIR)/runs
# OpenMP threads sleep while they wait instead of spinning, so that torch keeps its speed
# on a machine that other work shares (pruninglab/core/threads.py). It must be set before torch
# loads, so it is set here for every process and kernel that make starts.
export OMP_WAIT_POLICY ?= PASSIVE

BROWSER_STAMP := $(VENV)/.pruninglab-browser-installed

.PHONY: venv run book test unit notebooks-test test-browser chromium lab bench lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX)) -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

## Execute every notebook in notebooks/ in order with papermill (quick profile, embedded data).
run: $(STAMP)
	$(PY) -m pruninglab notebooks run --profile $(PROFILE)

## The course site, static HTML that works offline, from the notebooks executed in the
## $(PROFILE) profile: make run's copies in build/notebooks/$(PROFILE)/ where they are
## current, the others executed first; checked when built (pruninglab/course/book.py). Its
## dependencies are the extra `book`, which the environment's `dev` includes.
book: $(STAMP)
	$(PY) -m pruninglab.course.book --profile $(PROFILE)

## Unit tests, then nbval on every notebook in the smoke profile, each on $(JOBS) workers
## (one test file per worker at a time, so module fixtures are made once; nbval needs
## --dist loadscope: one notebook's cells stay in order on one worker; each
## worker's kernel takes one thread, so that the workers fill the CPUs between them; the
## exercises' checks run their references in place of the stubs: PRUNINGLAB_FILL_EXERCISES;
## a claim that a notebook's own run contradicts, unexplained, fails: PRUNINGLAB_CLAIMS).
test: unit notebooks-test

unit: $(STAMP)
	$(PY) -m pytest -n $(JOBS) --dist loadfile --ignore=tests/browser tests

notebooks-test: $(STAMP)
	PRUNINGLAB_PROFILE=smoke PRUNINGLAB_RUNS=$$(mktemp -d) MPLBACKEND=Agg PRUNINGLAB_THREADS=1 \
	PRUNINGLAB_FILL_EXERCISES=1 PRUNINGLAB_CLAIMS=strict \
	$(PY) -m pytest -c tests/nbval.ini --rootdir=. -n $(JOBS) --dist loadscope --nbval-lax \
	    --current-env --nbval-sanitize-with tests/sanitize.cfg notebooks

## Every widget notebook in JupyterLab in Debian's chromium, driven by Playwright, in the
## smoke profile: all cells run, every control moves, every figure redraws, no error shows
## (tests/browser). Screenshots: build/browser/. `timeout` ends a hung run; the tests stop
## their server and browser on the way out.
test-browser: $(BROWSER_STAMP) chromium
	rm -rf build/browser
	timeout --kill-after=30 900 $(PY) -m pytest -p no:xdist -p no:cacheprovider -v -s \
	    tests/browser

$(BROWSER_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,browser]'
	@touch $(BROWSER_STAMP)

## Debian's chromium, with apt-get when /usr/bin/chromium is missing.
chromium:
	@bash tests/browser/ensure-chromium

## JupyterLab on notebooks/.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

bench: $(STAMP)
	$(PY) -m pruninglab bench all

## ruff on the package, the tests and the notebooks (no formatter: see README, "Style").
lint: $(STAMP)
	$(VENV)/bin/ruff check pruninglab tests notebooks tools

clean:
	rm -rf build .pytest_cache
