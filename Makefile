# Kith: `make run` serves the API, `make test` checks everything, `make bench` measures,
# `make fuzz` fuzzes at length.
# All set up .venv first, from the lock in requirements/ (pinned versions, checked hashes);
# `make upgrade-lock` moves the lock on purpose and `make upgrade-check` tries the newest
# allowed versions without touching it (docs/operations.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
# Re-install when the lock or the project's metadata changes.
STAMP := $(VENV)/.installed
# The lock: one hashed requirements file per install (runtime, tests, benchmarks), written by
# `make lock` from pyproject.toml; every version in main.txt and dev.txt equals bench.txt's.
LOCK_DEV := requirements/dev.txt
LOCK_BENCH := requirements/bench.txt
UV_COMPILE := $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes
LOCK_INPUTS := pyproject.toml requirements/build.in
# Installs a lock file exactly as pinned, then Kith itself, editable, with the locked setuptools.
define install_locked
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(PIP) install --require-hashes -r $(1) > $(2) 2>&1 || { cat $(2); exit 1; }
	@$(PIP) install --no-deps --no-build-isolation -e . >> $(2) 2>&1 || { cat $(2); exit 1; }
endef

# `make bench BENCH_PROFILE=quick|full [BENCH_SERVER=uvicorn|granian] [BENCH_ARGS=...]`
BENCH_PROFILE ?= quick
BENCH_SERVER ?= uvicorn
BENCH_ARGS ?=
BENCH_STAMP := $(VENV)/.installed-bench
# The full profile is the recorded one: it waits for a quiet machine and rewrites docs/benchmarks.md.
BENCH_FULL_ARGS := $(if $(filter full,$(BENCH_PROFILE)),--docs --wait-load 0.7 --wait-timeout 1200)

# axe-core, the accessibility engine of the browser tests, from npm at a pinned version into a
# git-ignored folder (never committed); Chromium is Debian's (`.ci/run` installs it). See
# docs/web-client.md#tests.
AXE_VERSION := 4.11.4
WEB_TOOLS := .web-tools
AXE_STAMP := $(WEB_TOOLS)/.axe-core-$(AXE_VERSION)

.PHONY: browser-tools run test test-browser lint typecheck pytest migrate install clean bench fuzz test-resilience \
	lock upgrade-lock upgrade-check

run: $(STAMP)
	$(BIN)/kith migrate
	$(BIN)/kith serve

test: $(STAMP) browser-tools $(AXE_STAMP)
	$(BIN)/ruff check src tests bench requirements
	$(BIN)/ruff format --check src tests bench requirements
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest

# ruff, and the import layers of docs/architecture.md (pyproject.toml's [tool.importlinter]).
lint: $(STAMP)
	$(BIN)/ruff check src tests bench requirements
	$(BIN)/ruff format --check src tests bench requirements
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) browser-tools $(AXE_STAMP)
	$(BIN)/pytest

# The browser tests alone (tests/browser: the web client in Chromium).
test-browser: $(STAMP) browser-tools $(AXE_STAMP)
	$(BIN)/pytest tests/browser

# The browser tests drive Debian's Chromium (Playwright cannot download its own here) and scan
# with axe-core from npm: both are installed with apt-get when missing (as `make bench` installs
# wrk). Without them (no apt-get, no root), the browser tests fail in CI and are skipped elsewhere.
BROWSER_PACKAGES = $(if $(or $(KITH_CHROMIUM),$(shell command -v chromium)),,chromium) $(if $(shell command -v npm),,npm)
browser-tools:
	@if [ -n "$(strip $(BROWSER_PACKAGES))" ]; then \
		echo "Installing $(strip $(BROWSER_PACKAGES)) with apt-get for the browser tests..."; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; } \
			|| echo "Could not install $(strip $(BROWSER_PACKAGES)): the browser tests will be skipped (README)"; \
	fi

$(AXE_STAMP): | browser-tools
	@command -v npm >/dev/null 2>&1 || { echo "npm is not installed: the browser tests' accessibility scans will fail in CI and be skipped elsewhere"; exit 0; }; \
	mkdir -p $(WEB_TOOLS) && npm install --prefix $(WEB_TOOLS) --no-save --no-audit --no-fund --loglevel=error axe-core@$(AXE_VERSION) && touch $(AXE_STAMP)

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

$(STAMP): $(LOCK_DEV) pyproject.toml
	@echo "Installing Kith and its locked dependencies into $(VENV) (log: $(VENV)/install.log)..."
	$(call install_locked,$(LOCK_DEV),$(VENV)/install.log)
	touch $(STAMP)

# Re-resolve the lock from pyproject.toml, keeping every pin that still fits (after adding or
# changing a dependency). `make upgrade-lock` moves every pin to the newest allowed release.
LOCK_UPGRADE ?=
lock: $(STAMP)
	$(UV_COMPILE) $(LOCK_INPUTS) --extra dev --extra bench $(LOCK_UPGRADE) -o $(LOCK_BENCH)
	$(UV_COMPILE) $(LOCK_INPUTS) --extra dev -c $(LOCK_BENCH) -o $(LOCK_DEV)
	$(UV_COMPILE) $(LOCK_INPUTS) -c $(LOCK_BENCH) -o requirements/main.txt

upgrade-lock:
	$(MAKE) lock LOCK_UPGRADE=--upgrade
	@echo "Lock upgraded: now run 'make test' (and 'make bench' for a release); see docs/operations.md."

# The newest releases pyproject.toml allows, in a throwaway environment (the lock and .venv
# stay as they are): lint, types and the fast tests, so a breaking release is found on purpose.
UPGRADE_VENV := .venv-upgrade-check
UPGRADE_CHECK_TESTS ?= tests/unit tests/integration -m "not slow"
upgrade-check: $(STAMP)
	rm -rf $(UPGRADE_VENV)
	$(PYTHON) -m venv $(UPGRADE_VENV)
	$(BIN)/uv pip install --quiet --python $(UPGRADE_VENV)/bin/python --upgrade -e '.[dev]' -r requirements/build.in
	$(BIN)/python requirements/compare.py $(LOCK_DEV) $(UPGRADE_VENV)/bin/python
	$(UPGRADE_VENV)/bin/ruff check src tests bench requirements
	$(UPGRADE_VENV)/bin/ruff format --check src tests bench requirements
	$(UPGRADE_VENV)/bin/lint-imports
	$(UPGRADE_VENV)/bin/mypy
	KITH_TEST_BACKENDS=sqlite $(UPGRADE_VENV)/bin/pytest -q -p no:cacheprovider $(UPGRADE_CHECK_TESTS)
	@echo "The newest allowed versions pass; 'make upgrade-lock' adopts them."

bench: $(BENCH_STAMP)
	@command -v wrk >/dev/null 2>&1 || { echo "Installing wrk with apt-get..."; \
		apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
	$(BIN)/python -m bench run --profile $(BENCH_PROFILE) --server $(BENCH_SERVER) $(BENCH_FULL_ARGS) $(BENCH_ARGS)

$(BENCH_STAMP): $(STAMP) $(LOCK_BENCH)
	@echo "Installing the locked benchmark tools into $(VENV) (log: $(VENV)/install-bench.log)..."
	$(call install_locked,$(LOCK_BENCH),$(VENV)/install-bench.log)
	touch $(BENCH_STAMP)

clean:
	rm -rf $(VENV) $(UPGRADE_VENV) $(WEB_TOOLS) .pytest_cache .mypy_cache .ruff_cache
