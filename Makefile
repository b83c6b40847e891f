# Every install step lives here: a fresh clone goes green with `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench bench-incidents bench-drain clean bench-ingest

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

# The whole benchmark: ingest (both modes), drain (embedded; 1, 2, 4 worker processes) and
# webhook -> Slack latency, then one summary. BENCH_ARGS go to the ingest part.
BENCH_OUT ?= .bench
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	mkdir -p $(BENCH_OUT)
	$(BIN)/python tests/bench/ingest.py --json $(BENCH_OUT)/ingest.json $(BENCH_ARGS)
	$(BIN)/python tests/bench/drain.py --json $(BENCH_OUT)/drain.json
	$(BIN)/python tests/bench/incidents.py --json $(BENCH_OUT)/incidents.json --duration 20
	$(BIN)/python tests/bench/summary.py $(BENCH_OUT)

bench-ingest: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python tests/bench/ingest.py $(BENCH_ARGS)

bench-incidents: install
	$(BIN)/python tests/bench/incidents.py $(BENCH_ARGS)

bench-drain: install
	$(BIN)/python tests/bench/drain.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) hub.runtime.db hub.runtime.db-wal hub.runtime.db-shm
