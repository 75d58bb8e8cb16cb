"""Test fixtures: a real, migrated database per backend, a real SMTP server, the app.

Every API test runs on SQLite and, when it is reachable, on PostgreSQL. With
CI=true PostgreSQL and Redis are required: an unreachable server fails the run
instead of skipping it.

The suite runs in pytest-xdist workers (`make test`: two). Whatever two workers could
share is the worker's own: its PostgreSQL database, its Redis database (`REDIS_URL`),
its SMTP server and port, its SQLite template and temporary directories. Each worker
builds the app once per set of settings (`app`); every test still gets its own
database contents, its own `var` directory and its own resources (engine, rate-limit
counters, live-event hub, job runner, clock), opened by the app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from pydantic import SecretStr

from kith.core.config import Settings
from kith.core.logging import configure_logging
from kith.db.base import Base
from kith.db.migrate import upgrade
from kith.main import create_app
from kith.runtime.resources import Resources

logging.getLogger("mail.log").setLevel(logging.WARNING)

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_HOST = os.environ.get("KITH_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("KITH_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("KITH_TEST_PG_USER", "postgres")
# "gw0", "gw1", ... in a pytest-xdist worker; empty in a serial run (`-n 0`).
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
WORKER_INDEX = int(WORKER.removeprefix("gw")) if WORKER.startswith("gw") else 0


def _worker_redis_url(url: str) -> str:
    """The worker's own Redis database: the configured one (15) for the first worker and a
    serial run, one lower for each further worker, so that no two workers see each other's
    keys (rate-limit counters, job streams, periodic locks, pub/sub is per server anyway)."""
    parts = urlsplit(url)
    database = int(parts.path.lstrip("/") or "0") - WORKER_INDEX
    if database < 0:
        raise pytest.UsageError(f"{url} leaves no Redis database for xdist worker {WORKER}")
    return urlunsplit(parts._replace(path=f"/{database}"))


REDIS_URL = _worker_redis_url(os.environ.get("KITH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def postgres_available() -> bool:
    return _reachable(PG_HOST, PG_PORT)


def redis_available() -> bool:
    return _reachable("127.0.0.1", 6379)


def _backends() -> list[str]:
    # `make upgrade-check` narrows the run to SQLite; CI always runs every backend.
    chosen = os.environ.get("KITH_TEST_BACKENDS", "")
    if chosen and not IN_CI:
        return [name for name in chosen.split(",") if name in ("sqlite", "postgres")]
    if IN_CI and not postgres_available():
        raise pytest.UsageError("CI=true but PostgreSQL is not reachable on 127.0.0.1:5432")
    if IN_CI and not redis_available():
        raise pytest.UsageError("CI=true but Redis is not reachable on 127.0.0.1:6379")
    return ["sqlite", "postgres"] if postgres_available() else ["sqlite"]


BACKENDS = _backends()

# Tests that only mean something on one backend (a PostgreSQL pool, SQLite's pragmas) run
# only there: the other backend's copy is deselected rather than left to pass or skip by
# itself. Without PostgreSQL at hand (never with CI=true), a postgres_only test is skipped.
_ONLY = {"postgres_only": "postgres", "sqlite_only": "sqlite"}


# Tests that start real processes or servers of their own (`kith serve`, private PostgreSQL
# and Redis servers, a tmpfs) or time requests across processes: one xdist group, so one
# worker runs them one after another. Each has its own ports, directories and database,
# so two could run at once, but two of them on a 2-core machine slow each other past their
# timing bounds; the other worker meanwhile runs in-process tests.
PROCESS_GROUP = "processes"
_PROCESS_TESTS = (
    "tests/resilience/",
    "tests/integration/test_cross_process.py",
    "tests/integration/test_serve_processes.py",
    "tests/fuzz/test_http.py",
)

# Modules whose tests share a costly module-scoped fixture (the image's venv and wheel,
# about 9 s; the fuzzed app, whose database the stateful run finds as the earlier phases
# left it): each module runs on one worker, so the fixture is made once, as in a serial run.
_MODULE_GROUPS = ("tests/integration/test_deploy_files.py", "tests/fuzz/test_schemathesis.py")


# First, so that xdist, which names each test's group in its own hook, sees the marker.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        if item.nodeid.startswith(_PROCESS_TESTS):
            item.add_marker(pytest.mark.xdist_group(PROCESS_GROUP))
        elif item.nodeid.startswith(_MODULE_GROUPS):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
        wanted = [backend for marker, backend in _ONLY.items() if item.get_closest_marker(marker)]
        if not wanted:
            kept.append(item)
            continue
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("database_url") if callspec is not None else None
        if len(wanted) > 1 or backend is None:
            raise pytest.UsageError(f"{item.nodeid}: a *_only marker on a test that does not run per backend")
        if backend == wanted[0]:
            kept.append(item)
        elif wanted[0] not in BACKENDS:
            item.add_marker(pytest.mark.skip(reason=f"{wanted[0]} only, and {wanted[0]} is not reachable"))
            kept.append(item)
        else:
            deselected.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


# --- SMTP ---------------------------------------------------------------------------


@dataclass
class Mailbox:
    """Messages received by the test SMTP server."""

    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(message_from_bytes(envelope.original_content))
        return "250 OK"

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    @staticmethod
    def text_of(message: Message) -> str:
        payload = message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        return payload.decode()

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def token(self, address: str, subject: str) -> str:
        """The token in the link of the latest e-mail to `address` with this subject (jobs
        send a new account's e-mails in no fixed order, so never pick one by position)."""
        messages = [m for m in self.to(address) if m["Subject"] == subject]
        assert messages, f"no {subject!r} e-mail to {address}"
        body = self.text_of(messages[-1])
        match = re.search(r"token=([A-Za-z0-9_\-]+)", body)
        assert match, body
        return match.group(1)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: tuple[Mailbox, int]) -> Mailbox:
    smtp_server[0].clear()
    return smtp_server[0]


# --- databases ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "kith.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


async def _pg_admin(sql: str) -> None:
    connection = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def postgres_database(prefix: str = "kith_test") -> Iterator[str]:
    """A fresh, migrated PostgreSQL database, dropped afterwards."""
    name = f"{prefix}_{WORKER or 'serial'}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
        upgrade(url)
        yield url
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "kith.db"
        shutil.copy(template, target)
        return f"sqlite+aiosqlite:///{target}"
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(empty_postgres(url))
    return url


@pytest.fixture
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgres"


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp_server: tuple[Mailbox, int]) -> Settings:
    return Settings(
        env="test",
        var_dir=tmp_path / "var",
        database_url=database_url,
        public_url="https://kith.example",
        # Test clients use made-up hosts (testserver, test, sql); tests of the rule set their own.
        trusted_hosts=["*"],
        email_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=smtp_server[1],
        job_retry_base_seconds=0.05,
        job_retry_max_seconds=0.2,
        # Most tests register many users from one address; the rate-limit tests switch them on.
        rate_limits_enabled=False,
        _env_file=None,
    )


# Children before parents, so every DELETE finds no row still pointing at it.
_DELETE_ORDER = [table.name for table in reversed(Base.metadata.sorted_tables)]


async def empty_postgres(url: str) -> None:
    """Empty every table, so each test starts from a clean, migrated database.

    DELETE, not TRUNCATE: on tables holding a test's few rows it takes about 1 ms where
    TRUNCATE took 75 ms (it replaces every table's files). The schema has no sequences
    (ids are made in Python), so there is nothing else to reset. A table the migrations
    made that the models do not know would survive this, so that is refused.
    """
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        present = {
            row["tablename"]
            for row in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        unknown = present - set(_DELETE_ORDER) - {"alembic_version"}
        assert not unknown, f"tables the test reset does not empty: {sorted(unknown)}"
        statements = "; ".join(f'DELETE FROM "{table}"' for table in _DELETE_ORDER)  # noqa: S608 - model names
        async with connection.transaction():
            await connection.execute(statements)
    finally:
        await connection.close()


# --- the app ------------------------------------------------------------------------

# A test's own paths and the secret key generated under them. `create_app` reads none of
# them (its routes and middleware take other settings), and the lifespan opens the
# resources from `app.state.settings`, so one built app serves every test whose other
# settings are equal, each with its own paths.
_PER_TEST_SETTINGS = {"var_dir", "database_url", "media_dir", "secret_key"}
# The apps this worker built, by the settings that shaped them.
_built_apps: dict[str, FastAPI] = {}


def _app_key(settings: Settings) -> str:
    values = settings.model_dump(exclude=_PER_TEST_SETTINGS)
    # One app per backend too, though building reads nothing backend-specific today.
    values["backend"] = "sqlite" if settings.is_sqlite else "postgres"
    return json.dumps(
        values,
        sort_keys=True,
        default=lambda value: value.get_secret_value() if isinstance(value, SecretStr) else repr(value),
    )


def _shape(application: FastAPI) -> tuple[object, ...]:
    """What a test could change on a built app besides its state: routes, middleware,
    handlers and overrides. A test that changes any of it (some add a route that raises)
    gets its app thrown away afterwards."""
    return (
        tuple(id(route) for route in application.router.routes),
        len(application.user_middleware),
        tuple(application.exception_handlers.items()),
        tuple(application.dependency_overrides.items()),
    )


def _document(application: FastAPI) -> str | None:
    document = application.openapi_schema
    return None if document is None else json.dumps(document, sort_keys=True, default=repr)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app for `settings`, built once per worker, its lifespan run for this test alone.

    The lifespan opens fresh resources on this test's event loop (engine, rate-limit
    storage, live-event hub, job runner, clock, breakers) and closes them after it, so no
    in-process state passes from one test to the next; only the built routes and
    middleware are reused."""
    key = _app_key(settings)
    application = _built_apps.get(key)
    if application is None:
        application = _built_apps[key] = create_app(settings.model_copy(deep=True))
    # What create_app does to the process besides building: logging follows the settings
    # (an earlier test's app may have configured it otherwise).
    configure_logging(settings)
    application.state.settings = settings
    shape, document = _shape(application), _document(application)
    try:
        async with application.router.lifespan_context(application):
            yield application
    finally:
        # No later test can reach this test's closed resources or settings.
        for name in ("resources", "settings"):
            if hasattr(application.state, name):
                delattr(application.state, name)
        if _shape(application) != shape:
            del _built_apps[key]
        elif _document(application) != document:
            # Built (or changed) by this test: the next test that asks builds it afresh.
            application.openapi_schema = None


@pytest.fixture
def resources(app: FastAPI) -> Resources:
    value: Resources = app.state.resources
    return value


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
