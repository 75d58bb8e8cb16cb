"""A dependency that is down (the database, Redis) is a 503, not a 500.

`is_dependency_outage` tells an error that says "the server could not be reached or the
connection died" from every other one. `EdgeMiddleware` answers such an error,
wherever it was raised (a route, a dependency, a middleware), with a `ServiceUnavailable`
problem and `Retry-After`, and logs one warning naming the error's type: never its text,
which may quote SQL. Any other error, a constraint violation or a bug in a query
included, stays a 500 with its traceback in the log.
"""

from __future__ import annotations

import errno
import socket

import asyncpg.exceptions
import redis.exceptions
from sqlalchemy import exc as sa_exc

# Raised by the driver before SQLAlchemy wraps anything (connecting), or as the cause of
# what it wraps: the server refused, reset or timed out, or is shutting down or starting.
_OUTAGE_TYPES: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset, aborted, broken pipe
    TimeoutError,  # connect timeout (asyncio.TimeoutError is TimeoutError)
    socket.gaierror,  # the host name does not resolve
    asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08, connection does not exist
    asyncpg.exceptions.AdminShutdownError,  # 57P01: the server is stopping
    asyncpg.exceptions.CrashShutdownError,  # 57P02
    asyncpg.exceptions.CannotConnectNowError,  # 57P03: starting up, or in recovery
    asyncpg.exceptions.TooManyConnectionsError,  # 53300: max_connections reached
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    # The pool had no connection free within KITH_DATABASE_POOL_TIMEOUT_SECONDS.
    sa_exc.TimeoutError,
)
_UNREACHABLE_ERRNOS = frozenset({errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN})


def is_dependency_outage(error: BaseException) -> bool:
    """Whether `error` (or what it was raised from) says a dependency is unreachable.

    Follows SQLAlchemy's `orig` and explicit `__cause__` links, never `__context__`: an
    error raised while another was being handled is not therefore an outage. A group is
    an outage only when every member is one.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BaseExceptionGroup):
            return all(is_dependency_outage(member) for member in current.exceptions)
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True  # SQLAlchemy's own dialect-aware verdict: the connection is gone
        if isinstance(current, _OUTAGE_TYPES):
            return True
        if isinstance(current, OSError) and current.errno in _UNREACHABLE_ERRNOS:
            return True
        if isinstance(current, sa_exc.DBAPIError) and isinstance(current.orig, BaseException):
            current = current.orig
        else:
            current = current.__cause__
    return False
