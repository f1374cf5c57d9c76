# pruninglab: `make run` executes every notebook headless, `make test` runs the tests.
# Both create (or update) the virtual environment .venv first.

PYTHON  ?= python3
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.pruninglab-installed
PROFILE ?= quick
export PRUNINGLAB_RUNS ?= $(CURDIR)/runs

.PHONY: venv run test unit notebooks-test lab bench lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

## Execute every notebook in notebooks/ in order with papermill (quick profile, embedded data).
run: $(STAMP)
	$(PY) -m pruninglab.notebooks run --profile $(PROFILE)

## Unit tests, then nbval on every notebook in the smoke profile.
test: unit notebooks-test

unit: $(STAMP)
	$(PY) -m pytest tests

notebooks-test: $(STAMP)
	PRUNINGLAB_PROFILE=smoke PRUNINGLAB_RUNS=$$(mktemp -d) MPLBACKEND=Agg \
	$(PY) -m pytest -c tests/nbval.ini --rootdir=. --nbval-lax --current-env \
	    --nbval-sanitize-with tests/sanitize.cfg notebooks

## JupyterLab on notebooks/.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks

bench: $(STAMP)
	$(PY) -m pruninglab.bench all

## ruff on the package, the tests and the notebooks (no formatter: see README, "Style").
lint: $(STAMP)
	$(VENV)/bin/ruff check pruninglab tests notebooks

clean:
	rm -rf build .pytest_cache
