# `make run` and `make test` work on a fresh machine with only Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow lint typecheck contracts pytest schema bench bench-quick clean constraints

# Run-time dependencies at the versions deploy/constraints.txt pins (the image's); the test
# tools as pyproject.toml allows.
$(STAMP): pyproject.toml deploy/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' --constraint deploy/constraints.txt
	touch $(STAMP)

# Pin the run-time dependencies at the versions installed now, after installing what
# pyproject.toml asks without the old pins (a changed range may exclude one); to take newer
# versions, `pip install --upgrade` them in the venv first. Then run `make test`.
constraints:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/python -m tests.deploy.constraints > deploy/constraints.txt
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/crontask run examples/tasks $(RUN_ARGS)

test: $(STAMP) lint typecheck contracts pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)
	$(BIN)/lint-imports

# One pytest worker per core (pytest-xdist): most tests wait on real processes, so two workers on
# two cores take half the time of one. PYTEST_WORKERS=0 runs them in this process, in order.
# The slowest 25 are listed at the end: the suite is kept within about 10 minutes on two cores.
PYTEST_WORKERS ?= auto
pytest: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) --durations=25 $(PYTEST_ARGS)

# The slow tests (about 20 min in all): replicas at work, killed or stopped, faults or deadlines
# waited out in real time, and the longest tests of several real processes (8 s to minutes each). CI runs them after `make test`, one at
# a time: replicas under test must not share the cores with another test's.
test-slow: $(STAMP)
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

# Regenerate the committed copy of the JSON Schema from the model.
schema: $(STAMP)
	$(BIN)/crontask schema > schemas/crontask.schema.json
	$(BIN)/crontask crd > deploy/crd.yaml

# Benchmarks against plain APScheduler: one table, written to bench/RESULTS.md (about 45 min on
# two cores; the PostgreSQL rows need CRONTASK_TEST_POSTGRES_URL).
bench: $(STAMP)
	$(BIN)/python bench/run.py

# Small sizes, about 6 min (bench/RESULTS-quick.md): keeps the benchmark code working; CI runs it.
bench-quick: $(STAMP)
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
