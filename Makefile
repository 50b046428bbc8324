# Kadence: `make run` starts the whole scheduler locally, `make test` runs every test.
# Only Python 3.11+ is needed: everything else is installed into .venv from pyproject.toml.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test test-fast lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install Kadence with its test and lint tools

run: install ## run the whole scheduler on embedded PostgreSQL and Redis
	$(VENV)/bin/kadence dev

test: install lint ## the lint checks, then every test suite against real (embedded) servers
	$(PY) -m pytest -q

test-fast: install ## the unit tests only
	$(PY) -m pytest -q tests/unit

lint: install ## ruff, mypy (strict on the core) and the import layering contracts
	$(VENV)/bin/ruff check operator tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .kadence

include mk/deploy.mk

.PHONY: bench bench-quick
bench: install ## every benchmark figure beside its baseline, as one JSON object
	$(PY) bench/run.py

bench-quick: install ## the same at small sizes
	$(PY) bench/run.py --quick

.PHONY: drills drills-short
drills: install ## fault drills (workers killed, Redis and PostgreSQL restarted, malformed traffic)
	$(PY) bench/drills.py

drills-short: install ## the same with fewer rounds
	$(PY) bench/drills.py --short
