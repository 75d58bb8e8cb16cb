"""Schemathesis against the app in-process (ASGI, no sockets): every operation, then
stateful sequences through the OpenAPI links. Configuration: `schemathesis.toml` here.

The defaults are the bounded CI profile: the examples and fuzzing phases for every
operation, a few stateful runs, on SQLite. `make fuzz` runs the same tests with every
phase and more cases (`KITH_FUZZ_PHASES`, `KITH_FUZZ_MAX_EXAMPLES`,
`KITH_FUZZ_STATEFUL_EXAMPLES`, `KITH_FUZZ_STATEFUL_STEPS`, `KITH_FUZZ_BACKENDS`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase
from schemathesis.python import asgi

import tests.fuzz.hooks  # noqa: F401 - registers the formats, the login and the hooks
from kith.main import create_app
from tests.conftest import BACKENDS, postgres_database
from tests.fuzz import harness

MAX_EXAMPLES = int(os.environ.get("KITH_FUZZ_MAX_EXAMPLES", "5"))
STATEFUL_EXAMPLES = int(os.environ.get("KITH_FUZZ_STATEFUL_EXAMPLES", "8"))
STATEFUL_STEPS = int(os.environ.get("KITH_FUZZ_STATEFUL_STEPS", "15"))
# The coverage phase (every boundary of every constraint) sends some 2,000 requests, more
# than the CI profile's budget: in CI it runs, time-boxed, in the HTTP run; `make fuzz`
# runs it here in full.
PHASES = set(os.environ.get("KITH_FUZZ_PHASES", "examples,fuzzing").split(","))
# SQLite in the CI profile: the HTTP run covers PostgreSQL and Redis. `make fuzz` runs both.
_WANTED = os.environ.get("KITH_FUZZ_BACKENDS", "sqlite").split(",")
FUZZ_BACKENDS = [backend for backend in BACKENDS if backend in _WANTED]
# Generation may be slow on a busy machine; that says nothing about the API.
SLOW_GENERATION = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]

pytestmark = pytest.mark.timeout(int(os.environ.get("KITH_FUZZ_TIMEOUT", "900")))


@pytest.fixture(scope="module", params=FUZZ_BACKENDS)
def fuzzed_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """The app on a fresh database with the run's two accounts; its lifespan runs in
    schemathesis's event loop thread and is stopped here."""
    var_dir = tmp_path_factory.mktemp("fuzz")
    with ExitStack() as stack:
        if request.param == "postgres":
            database_url = stack.enter_context(postgres_database("kith_fuzz"))
        else:
            template: Path = request.getfixturevalue("sqlite_template")
            shutil.copy(template, var_dir / "kith.db")
            database_url = f"sqlite+aiosqlite:///{var_dir / 'kith.db'}"
        settings = harness.fuzz_settings(database_url, var_dir)
        accounts = asyncio.run(harness.create_accounts(settings))
        environment = stack.enter_context(pytest.MonkeyPatch.context())
        for name, value in harness.account_environment(accounts).items():
            environment.setenv(name, value)
        app = create_app(settings)
        try:
            yield app
        finally:
            asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def kith_api(fuzzed_app: FastAPI) -> Any:
    config = schemathesis.Config.from_path(harness.CONFIG)
    phases = config.projects.default.phases
    phases.examples.enabled = "examples" in PHASES
    phases.coverage.enabled = "coverage" in PHASES
    phases.fuzzing.enabled = "fuzzing" in PHASES
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app, config=config)


schema = schemathesis.pytest.from_fixture("kith_api")


@schema.parametrize()
@hypothesis.settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=SLOW_GENERATION)
def test_every_operation(case: schemathesis.Case[Any]) -> None:
    """Examples, coverage and fuzzing phases, valid and invalid data, every check."""
    case.call_and_validate()


def test_stateful_sequences(kith_api: Any) -> None:
    """Sequences that follow the OpenAPI links (a new post into its likes, a new user
    into a friend request, a report into moderation), every check on every step.

    Each sequence is a Hypothesis run of its own, and nothing is replayed: which links
    can be followed depends on what the server holds, which earlier sequences changed,
    so Hypothesis would take a replayed run that goes elsewhere for a flaw in its data
    generation (FlakyStrategyDefinition). A failure is reported as it happened.
    """
    machine = kith_api.as_state_machine()
    settings = hypothesis.settings(
        max_examples=1,
        stateful_step_count=STATEFUL_STEPS,
        deadline=None,
        suppress_health_check=SLOW_GENERATION,
        database=None,
        phases=[Phase.generate],
    )
    for _ in range(STATEFUL_EXAMPLES):
        machine.run(settings=settings)
