"""The per-request transaction: commit on success, roll back on any error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_resources(connection: HTTPConnection) -> Resources:
    """The process's resources, for HTTP plumbing and `kith.http.deps`; routes declare
    the one resource they need instead."""
    resources: Resources = connection.app.state.resources
    return resources


async def resources_dependency(request: Request) -> Resources:
    # Async on purpose: FastAPI runs a plain `def` dependency in a worker thread.
    return get_resources(request)


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request.

    Services never commit: this dependency commits once the endpoint has returned,
    before the response is sent (`scope="function"`), and rolls back if anything
    raised. Jobs queued during the request go to the job runner after the commit.
    """
    async with unit_of_work(get_resources(request), write=request.method not in SAFE_METHODS) as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(request_session, scope="function")]
ResourcesDep = Annotated[Resources, Depends(resources_dependency)]
