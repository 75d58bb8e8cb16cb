"""The ceilings: a bare FastAPI endpoint that returns 20 post objects from memory, and the
same endpoint making Kith's database round trips first.

It runs in the same server setup as Kith (same server, workers and pinning) and answers
the feed's path with the feed's response model, but without middleware, authentication
or a database, so the ratio of a scenario to it is the share of the server's best case
that the scenario reaches.

    uvicorn bench.ceiling:create_app --factory
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI, Request

from kith.auth.schemas import UserSummary
from kith.core.pagination import CursorPage
from kith.core.urls import API_PREFIX
from kith.db.models import Visibility
from kith.posts.schemas import PostView

PAGE_SIZE = 20


def sample_page() -> CursorPage[PostView]:
    """Twenty posts shaped like a feed page (authors, counts, timestamps)."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    items = [
        PostView(
            id=f"0190c0de-0000-7000-8000-{index:012d}",
            author=UserSummary(
                id=f"0190c0de-0000-7000-9000-{index:012d}",
                username=f"user{index}",
                display_name=f"User {index}",
            ),
            content=f"Post at {start + timedelta(minutes=index):%Y-%m-%d %H:%M} by user{index}",
            visibility=Visibility.friends,
            media=[],
            like_count=index * 3,
            comment_count=index % 4,
            liked_by_me=index % 5 == 0,
            created_at=start + timedelta(minutes=index),
            edited_at=None,
        )
        for index in range(PAGE_SIZE)
    ]
    return CursorPage[PostView](items=items, next_cursor="c2FtcGxlLWN1cnNvcg")


def create_app() -> FastAPI:
    """The ceiling app: GET <API prefix>/feed answers the same page every time."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    page = sample_page()

    @app.get(f"{API_PREFIX}/feed", response_model=CursorPage[PostView])
    async def feed() -> CursorPage[PostView]:
        return page

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


# --- the ceiling with Kith's database round trips -------------------------------------------


def driver_statement(statement: Any, values: dict[str, Any], dialect: Any) -> tuple[str, list[Any]]:
    """A SQLAlchemy statement with values, as the SQL text and arguments asyncpg is sent."""
    state = statement.compile(dialect=dialect).construct_expanded_state(values)
    params, processors = state.parameters, state.processors
    return state.statement, [
        processors[name](params[name]) if name in processors else params[name]
        for name in state.positiontup or []
    ]


async def kith_statements(url: str, reader_name: str) -> list[tuple[str, list[Any]]]:
    """Kith's feed statements for one reader, compiled with that reader's values.

    The session check (on a session opened for the reader) and the feed's first page with
    everything it shows (authors, whether the reader liked each post, media): the two
    statements Kith runs for `GET /feed`, as the same SQL text with the same arguments.
    """
    from sqlalchemy import select

    from bench.prepare import mint_tokens
    from kith.auth.repository import _ACTIVE_SESSION_USER
    from kith.core.config import Settings
    from kith.db.models import User
    from kith.feed.repository import _FIRST_CARDS
    from kith.media.storage import LocalMediaStorage
    from kith.runtime.resources import Resources
    from kith.runtime.transaction import unit_of_work

    settings = Settings(database_url=url, secret_key=secrets.token_urlsafe(48), _env_file=None)
    resources = await Resources.open(settings, LocalMediaStorage(settings.media_root))
    try:
        async with unit_of_work(resources, write=False) as session:
            reader = await session.scalar(select(User.id).where(User.username == reader_name))
            if reader is None:
                raise RuntimeError(f"no user {reader_name!r} in {url}")
            now = resources.clock.now()
            dialect = session.get_bind().dialect
        claims = resources.tokens.verify((await mint_tokens(settings, [reader]))[0])
    finally:
        await resources.close()
    return [
        driver_statement(
            _ACTIVE_SESSION_USER, {"session_id": claims.session_id, "user_id": reader, "now": now}, dialect
        ),
        driver_statement(
            _FIRST_CARDS, {"reader_id": reader, "viewer_id": reader, "limit": PAGE_SIZE + 1}, dialect
        ),
    ]


def create_round_trip_app() -> FastAPI:
    """The ceiling plus Kith's database round trips, made straight with asyncpg.

    `GET <API prefix>/feed` runs Kith's feed statements (both, or only the feed query with
    `BENCH_CEILING_STATEMENTS=feed`) on one pooled connection, as Kith's reads do (no
    transaction), then answers the plain ceiling's page. No ORM, middleware or
    authentication: what is left of the ceiling once a request makes these round trips.

        BENCH_CEILING_DATABASE_URL=postgresql+asyncpg://... uvicorn bench.ceiling:create_round_trip_app --factory
    """
    import asyncpg

    url = os.environ["BENCH_CEILING_DATABASE_URL"]
    chosen = os.environ.get("BENCH_CEILING_STATEMENTS", "all")
    reader = os.environ.get("BENCH_CEILING_READER", "user1")
    page = sample_page()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        statements = await kith_statements(url, reader)
        app.state.statements = statements if chosen == "all" else [statements[1]]
        app.state.pool = await asyncpg.create_pool(
            url.replace("postgresql+asyncpg://", "postgresql://"), min_size=1, max_size=10
        )
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.get(f"{API_PREFIX}/feed", response_model=CursorPage[PostView])
    async def feed(request: Request) -> CursorPage[PostView]:
        async with request.app.state.pool.acquire() as connection:
            for sql, args in request.app.state.statements:
                await connection.fetch(sql, *args)
        return page

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


# --- the floor of Kith's data layer ---------------------------------------------------------


def create_data_layer_app() -> FastAPI:
    """The one-query ceiling's query made the way Kith makes it: its data layer, nothing else.

    `GET <API prefix>/feed` runs `kith.feed.repository.page_views` for one reader in a read-only
    Kith unit of work (SQLAlchemy's async session over asyncpg: the same statement and rows
    as `ceiling_db1`), builds the page with Kith's read model and answers it with the response
    model. No middleware, authentication, rate limits, ETag or dependency injection: what a
    feed page costs with the libraries Kith is built on before Kith adds anything, so the
    distance from it to the one-query ceiling is the data layer's own.

        BENCH_CEILING_DATABASE_URL=postgresql+asyncpg://... uvicorn bench.ceiling:create_data_layer_app --factory
    """
    from sqlalchemy import select

    from kith.core.config import Settings
    from kith.core.pagination import encode_cursor
    from kith.db.models import User
    from kith.feed import repository
    from kith.media.storage import LocalMediaStorage
    from kith.runtime.resources import Resources
    from kith.runtime.transaction import unit_of_work

    url = os.environ["BENCH_CEILING_DATABASE_URL"]
    reader_name = os.environ.get("BENCH_CEILING_READER", "user1")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = Settings(database_url=url, secret_key=secrets.token_urlsafe(48), _env_file=None)
        resources = await Resources.open(settings, LocalMediaStorage(settings.media_root))
        async with unit_of_work(resources, write=False) as session:
            reader = await session.scalar(select(User).where(User.username == reader_name))
        if reader is None:
            raise RuntimeError(f"no user {reader_name!r} in {url}")
        app.state.resources, app.state.reader = resources, reader
        try:
            yield
        finally:
            await resources.close()

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)

    @app.get(f"{API_PREFIX}/feed", response_model=CursorPage[PostView])
    async def feed(request: Request) -> CursorPage[PostView]:
        async with unit_of_work(request.app.state.resources, write=False) as session:
            items = await repository.page_views(session, request.app.state.reader, None, PAGE_SIZE + 1)
        next_cursor = encode_cursor(items[PAGE_SIZE - 1].id) if len(items) > PAGE_SIZE else None
        return CursorPage[PostView].model_construct(items=items[:PAGE_SIZE], next_cursor=next_cursor)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
