"""Which errors are a dependency outage (503), and which stay a 500."""

from __future__ import annotations

import errno

import asyncpg.exceptions
import httpx
import pytest
import redis.exceptions
from sqlalchemy import exc as sa_exc
from starlette.types import Receive, Scope, Send

from kith.core.breaker import Breaker
from kith.core.outages import is_dependency_outage
from kith.http.middleware import EdgeMiddleware
from tests.helpers import API

SQL = "INSERT INTO posts (id, body) VALUES ($1, $2)"


def _wrapped(error_type: type[sa_exc.DBAPIError], orig: BaseException, invalidated: bool) -> BaseException:
    return error_type(SQL, {}, orig, connection_invalidated=invalidated)


def _raised_from(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


OUTAGES = {
    "connection refused on connect": ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    "connect timeout": TimeoutError(),
    "host unreachable": OSError(errno.EHOSTUNREACH, "no route"),
    "connection invalidated": _wrapped(sa_exc.DBAPIError, Exception("gone"), invalidated=True),
    "server shutting down": _wrapped(
        sa_exc.DBAPIError, _raised_from(Exception("adapted"), asyncpg.exceptions.AdminShutdownError()), False
    ),
    "server starting up": asyncpg.exceptions.CannotConnectNowError(),
    "pool wait exceeded": sa_exc.TimeoutError("QueuePool limit reached"),
    "redis down": redis.exceptions.ConnectionError("refused"),
    "redis timeout": redis.exceptions.TimeoutError("timeout"),
    "raised from an outage": _raised_from(RuntimeError("wrapper"), ConnectionResetError()),
    "group of outages": ExceptionGroup("both", [ConnectionResetError(), TimeoutError()]),
}

NOT_OUTAGES = {
    "unique violation": _wrapped(
        sa_exc.IntegrityError,
        _raised_from(Exception("adapted"), asyncpg.exceptions.UniqueViolationError()),
        False,
    ),
    "bug in a query": _wrapped(
        sa_exc.ProgrammingError,
        _raised_from(Exception("adapted"), asyncpg.exceptions.UndefinedTableError()),
        False,
    ),
    "misuse of a connection": _wrapped(
        sa_exc.InterfaceError, Exception("another operation"), invalidated=False
    ),
    "disk full": OSError(errno.ENOSPC, "No space left on device"),
    "plain bug": KeyError("x"),
    "raised while handling an outage": ValueError("bug"),
    "group with a bug": ExceptionGroup("mixed", [ConnectionResetError(), KeyError("x")]),
}
NOT_OUTAGES["raised while handling an outage"].__context__ = ConnectionResetError()


@pytest.mark.parametrize("name", OUTAGES)
def test_an_outage_is_recognised(name: str) -> None:
    assert is_dependency_outage(OUTAGES[name])


@pytest.mark.parametrize("name", NOT_OUTAGES)
def test_anything_else_is_not_an_outage(name: str) -> None:
    assert not is_dependency_outage(NOT_OUTAGES[name])


def _failing_app(error: BaseException) -> EdgeMiddleware:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise error

    return EdgeMiddleware(app, public_url="https://kith.example", retry_after_seconds=7)


async def _get(app: EdgeMiddleware) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(f"{API}/users/me")


async def test_an_outage_is_answered_503_with_retry_after() -> None:
    response = await _get(_failing_app(OUTAGES["connection invalidated"]))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert "INSERT" not in response.text and "gone" not in response.text


async def test_a_constraint_violation_stays_a_500() -> None:
    response = await _get(_failing_app(NOT_OUTAGES["unique violation"]))
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "retry-after" not in response.headers


def _open(breaker: Breaker) -> bool:
    return breaker.open  # a call: mypy would narrow the property across the asserts


def test_a_breaker_opens_for_its_window_after_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("kith.core.breaker.time.monotonic", lambda: now[0])
    breaker = Breaker(5.0)
    assert not _open(breaker)
    breaker.failed()
    now[0] += 4.9
    assert _open(breaker)
    now[0] += 0.2
    assert not _open(breaker)  # tried again after the window
    breaker.failed()
    breaker.succeeded()
    assert not _open(breaker)
