"""The per-request transaction: commit on success, roll back on any error."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Where FastAPI keeps the exit stack it closes after the endpoint, before the response is sent.
_ENDPOINT_STACK = "fastapi_function_astack"


def get_resources(connection: HTTPConnection) -> Resources:
    """The process's resources, for HTTP plumbing and `kith.http.deps`; routes declare
    the one resource they need instead."""
    resources: Resources = connection.app.state.resources
    return resources


async def resources_dependency(request: Request) -> Resources:
    # Async on purpose: FastAPI runs a plain `def` dependency in a worker thread.
    return get_resources(request)


async def request_session(request: Request) -> AsyncSession:
    """One transaction per request.

    Services never commit: the transaction commits once the endpoint has returned and its
    response is built, before it is sent, and rolls back if anything raised. Jobs queued
    during the request go to the job runner after the commit.

    The unit of work is entered on FastAPI's exit stack for the endpoint (the one a
    `yield` dependency with `scope="function"` uses), which FastAPI closes at exactly that
    point. A `yield` dependency would do the same at about 25 µs more a request (FastAPI
    wraps each in a context manager and a cancel scope of its own; docs/benchmarks.md).
    """
    stack: AsyncExitStack | None = request.scope.get(_ENDPOINT_STACK)
    if stack is None:
        raise RuntimeError(f"no {_ENDPOINT_STACK} in the request scope: FastAPI's request handling changed")
    return await stack.enter_async_context(
        unit_of_work(get_resources(request), write=request.method not in SAFE_METHODS)
    )


DbSession = Annotated[AsyncSession, Depends(request_session)]
ResourcesDep = Annotated[Resources, Depends(resources_dependency)]
