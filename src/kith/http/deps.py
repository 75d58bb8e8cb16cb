"""What a route may declare of the process's resources, one dependency each.

Routes name exactly what they use (`now: Now`, `passwords: Passwords`...; WebSocket routes too) and hand it to
services as plain arguments; no service receives the whole `Resources`
(docs/architecture.md#dependencies). `Now` is read once per request, so every check and
row of one request sees the same instant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from functools import partial
from typing import Annotated, NamedTuple, TypeVar

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from kith.core.clock import Clock
from kith.core.config import Settings
from kith.core.realtime import RealtimeHub
from kith.core.security import AccessTokenCodec, PasswordHasher
from kith.core.storage import MediaStorage
from kith.http.session import get_resources
from kith.runtime.resources import Resources
from kith.runtime.session_cache import SessionCache
from kith.runtime.transaction import unit_of_work

T = TypeVar("T")

UnitOfWork = Callable[..., AbstractAsyncContextManager[AsyncSession]]


def provided(pick: Callable[[Resources], T]) -> Callable[[HTTPConnection], Awaitable[T]]:
    """A dependency that hands a route what `pick` takes from the process's resources."""

    # Async on purpose: FastAPI runs a plain `def` dependency in a worker thread.
    async def dependency(connection: HTTPConnection) -> T:
        return pick(get_resources(connection))

    return dependency


_NOW = "kith_now"


def request_now(connection: HTTPConnection) -> datetime:
    """The request's instant: read from the clock the first time anything asks, then the
    same for every check and row of the request (authentication reads it too, without a
    dependency of its own)."""
    state = connection.scope.setdefault("state", {})
    now: datetime | None = state.get(_NOW)
    if now is None:
        now = state[_NOW] = get_resources(connection).clock.now()
    return now


async def _now(connection: HTTPConnection) -> datetime:
    # Async on purpose: FastAPI runs a plain `def` dependency in a worker thread.
    return request_now(connection)


Now = Annotated[datetime, Depends(_now)]
# For what lives longer than a request (a WebSocket) and must read the time as it passes.
AppClock = Annotated[Clock, Depends(provided(lambda resources: resources.clock))]
Realtime = Annotated[RealtimeHub, Depends(provided(lambda resources: resources.realtime))]
AppSettings = Annotated[Settings, Depends(provided(lambda resources: resources.settings))]
Passwords = Annotated[PasswordHasher, Depends(provided(lambda resources: resources.passwords))]
Tokens = Annotated[AccessTokenCodec, Depends(provided(lambda resources: resources.tokens))]
MediaFiles = Annotated[MediaStorage, Depends(provided(lambda resources: resources.media))]


class TokenChecks(NamedTuple):
    """What checking an access token takes: its codec, and the sessions found live a moment
    ago (kith.runtime.session_cache)."""

    codec: AccessTokenCodec
    live_sessions: SessionCache


def token_checks(connection: HTTPConnection) -> TokenChecks:
    """The request's `TokenChecks`, read by authentication itself (as it reads
    `request_now`) rather than declared: every authenticated request would otherwise pay
    for one more dependency (FastAPI spends about 8 µs on each; docs/benchmarks.md)."""
    resources = get_resources(connection)
    return TokenChecks(resources.tokens, resources.session_cache)


# For a route that must run a transaction of its own besides the request's
# (`async with transaction(write=False) as session:`); say why where it is used.
Transaction = Annotated[UnitOfWork, Depends(provided(lambda resources: partial(unit_of_work, resources)))]
