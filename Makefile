# Every install step lives here: a fresh clone goes green with `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Hashed, universal (Python >= 3.11, any platform) locks made by `make lock` from pyproject.toml:
# LOCK has the dev extra and is what .venv (so make test, make lint, CI) installs;
# RUNTIME_LOCK is the runtime subset of the same versions, for deploy/Dockerfile.
LOCK := requirements.lock
RUNTIME_LOCK := requirements-runtime.lock

.PHONY: install chromium lock run test lint bench bench-incidents bench-drain clean bench-ingest

install: $(STAMP) chromium

# The console's browser tests (tests/console) drive Debian's chromium through Playwright's
# driver; no browser is downloaded at run time. Installed here so that `make test` on a fresh
# machine goes green.
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# Every package from the lock, hashes checked; then the hub itself with no dependency of its
# own resolved. pip check fails when pyproject.toml declares what the lock lacks (run make lock).
$(STAMP): $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

# Re-resolve both locks after editing dependencies in pyproject.toml. Pins already in a lock
# are kept unless LOCK_ARGS says otherwise: LOCK_ARGS=--upgrade moves everything to the newest
# allowed release, LOCK_ARGS='--upgrade-package fastapi' just one. The runtime lock is resolved
# under the dev lock as a constraint, so the image runs exactly the versions the tests ran.
# uv comes from the current lock; not via `install`, whose pip check fails until the lock
# has caught up with pyproject.toml.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --generate-hashes --quiet \
	--custom-compile-command 'make lock'
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install -q --require-hashes -r $(LOCK)
	$(UV_COMPILE) --extra dev $(LOCK_ARGS) -o $(LOCK)
	$(UV_COMPILE) --constraint $(LOCK) -o $(RUNTIME_LOCK)

run: install
	$(BIN)/hub migrate
	$(BIN)/hub serve

# One xdist worker more than there are cores: most of the suite waits on subprocesses,
# retries and injected faults, so one per core leaves the CPU half idle. The fault tests
# judge recovery by progress, not by a fixed deadline, so a busier machine slows them
# without failing them. PYTEST_ARGS="-n 0" runs it in one process.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

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
	rm -rf $(VENV) hub.db hub.db-wal hub.db-shm hub.db-lock hub.db-wait
