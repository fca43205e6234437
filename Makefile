# spol: `make demo` runs the method end to end, `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime
# pytest-xdist workers (`auto`: one per core). Each test file runs whole on one worker, so the runs its tests share
# are made once; files are handed out in the suite's order, the slow ones first (tests/conftest.py).
TEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: help install test test-fast demo lint clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

# What spol needs to run; the demo stops here (the dev extras add about 25 s to a fresh install).
$(RUNTIME_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the versions that lie on this machine's disk.
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e .
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## Create .venv and install spol with its dev extras (quick when done)

test: lint  ## Install, lint, run every test (TEST_WORKERS=0: in this one process)
	$(PYTEST)

test-fast: install  ## The inner loop: every test but the slow ones (DDP, torchrun, demo, GPU check), no lint
	$(PYTEST) -m "not slow"

demo: $(RUNTIME_STAMP)  ## Install spol (without the dev extras), then run the demo (synthetic benchmark, SPOL vs CAM)
	$(BIN)/spol demo

lint: install  ## ruff on src/ and tests/, mypy on src/, and no module importing a layer above it
	$(BIN)/ruff check src tests
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:  ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
