"""What a route may declare of the process's resources, one dependency each.

Routes name exactly what they use (`now: Now`, `passwords: Passwords`...; WebSocket routes too) and hand it to
services as plain arguments; no service receives the whole `Resources`
(docs/architecture.md#dependencies). `Now` is read once per request, so every check and
row of one request sees the same instant.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from functools import partial
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from kith.core.breaker import Breaker
from kith.core.clock import Clock
from kith.core.config import Settings
from kith.core.realtime import RealtimeHub
from kith.core.security import AccessTokenCodec, PasswordHasher
from kith.core.storage import MediaStorage
from kith.http.session import get_resources
from kith.runtime.transaction import unit_of_work

UnitOfWork = Callable[..., AbstractAsyncContextManager[AsyncSession]]


# Async on purpose, all of them: FastAPI runs a plain `def` dependency in a worker thread.
async def _now(connection: HTTPConnection) -> datetime:
    return get_resources(connection).clock.now()


async def _clock(connection: HTTPConnection) -> Clock:
    return get_resources(connection).clock


async def _realtime(connection: HTTPConnection) -> RealtimeHub:
    return get_resources(connection).realtime


async def _settings(connection: HTTPConnection) -> Settings:
    return get_resources(connection).settings


async def _passwords(connection: HTTPConnection) -> PasswordHasher:
    return get_resources(connection).passwords


async def _tokens(connection: HTTPConnection) -> AccessTokenCodec:
    return get_resources(connection).tokens


async def _media_storage(connection: HTTPConnection) -> MediaStorage:
    return get_resources(connection).media


async def _redis_breaker(connection: HTTPConnection) -> Breaker:
    return get_resources(connection).redis_breaker


async def _transactions(connection: HTTPConnection) -> UnitOfWork:
    return partial(unit_of_work, get_resources(connection))


Now = Annotated[datetime, Depends(_now)]
# For what lives longer than a request (a WebSocket) and must read the time as it passes.
AppClock = Annotated[Clock, Depends(_clock)]
Realtime = Annotated[RealtimeHub, Depends(_realtime)]
AppSettings = Annotated[Settings, Depends(_settings)]
Passwords = Annotated[PasswordHasher, Depends(_passwords)]
Tokens = Annotated[AccessTokenCodec, Depends(_tokens)]
MediaFiles = Annotated[MediaStorage, Depends(_media_storage)]
# Open while Redis is failing: callers skip it instead of waiting for a timeout.
RedisBreaker = Annotated[Breaker, Depends(_redis_breaker)]
# For a route that must run a transaction of its own besides the request's
# (`async with transaction(write=False) as session:`); say why where it is used.
Transaction = Annotated[UnitOfWork, Depends(_transactions)]
