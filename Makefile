# Every install step lives here: a fresh clone goes green with `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench bench-incidents bench-drain clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: install
	$(BIN)/hub migrate
	$(BIN)/hub serve

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python tests/bench/ingest.py $(BENCH_ARGS)

bench-incidents: install
	$(BIN)/python tests/bench/incidents.py $(BENCH_ARGS)

bench-drain: install
	$(BIN)/python tests/bench/drain.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) hub.db hub.db-wal hub.db-shm
