# Kith: `make run` serves the API, `make test` checks everything, `make bench` measures,
# `make fuzz` fuzzes at length.
# All set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
# Re-install when the project's dependencies change.
STAMP := $(VENV)/.installed

# `make bench BENCH_PROFILE=quick|full [BENCH_SERVER=uvicorn|granian] [BENCH_ARGS=...]`
BENCH_PROFILE ?= quick
BENCH_SERVER ?= uvicorn
BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.installed-bench
# The full profile is the recorded one: it waits for a quiet machine and rewrites docs/benchmarks.md.
BENCH_FULL_ARGS := $(if $(filter full,$(BENCH_PROFILE)),--docs --wait-load 0.7 --wait-timeout 1200)

.PHONY: run test lint typecheck pytest migrate install clean bench fuzz test-resilience

run: $(STAMP)
	$(BIN)/kith migrate
	$(BIN)/kith serve

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

# The fault tests alone (docs/reliability.md); `make test` runs them too.
test-resilience: $(STAMP)
	$(BIN)/pytest tests/resilience -v

# The long fuzzing profile (docs/security.md): every schemathesis phase in-process on SQLite
# and PostgreSQL, then the CLI over HTTP against `kith serve` on PostgreSQL and Redis for
# FUZZ_HTTP_SECONDS. `make test` runs a bounded profile of the same tests.
FUZZ_HTTP_SECONDS ?= 600
fuzz: $(STAMP)
	KITH_FUZZ_PHASES=examples,coverage,fuzzing KITH_FUZZ_BACKENDS=sqlite,postgres \
	KITH_FUZZ_MAX_EXAMPLES=100 KITH_FUZZ_STATEFUL_EXAMPLES=50 KITH_FUZZ_STATEFUL_STEPS=40 \
	KITH_FUZZ_TIMEOUT=7200 KITH_FUZZ_HTTP_SECONDS=$(FUZZ_HTTP_SECONDS) \
	$(BIN)/pytest tests/fuzz/test_schemathesis.py tests/fuzz/test_http.py -v

migrate: $(STAMP)
	$(BIN)/kith migrate

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing Kith and its dependencies into $(VENV) (log: $(VENV)/install.log)..."
	@$(PIP) install -e '.[dev]' > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	touch $(STAMP)

bench: $(BENCH_STAMP)
	@command -v wrk >/dev/null 2>&1 || { echo "Installing wrk with apt-get..."; \
		apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
	$(BIN)/python -m bench run --profile $(BENCH_PROFILE) --server $(BENCH_SERVER) $(BENCH_FULL_ARGS) $(BENCH_ARGS)

$(BENCH_STAMP): $(STAMP)
	@echo "Installing the benchmark tools into $(VENV) (log: $(VENV)/install-bench.log)..."
	@$(PIP) install -e '.[dev,bench]' > $(VENV)/install-bench.log 2>&1 || { cat $(VENV)/install-bench.log; exit 1; }
	touch $(BENCH_STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
