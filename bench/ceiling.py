"""The ceiling: a bare FastAPI endpoint that returns 20 post objects from memory.

It runs in the same server setup as Kith (same server, workers and pinning) and answers
the feed's path with the feed's response model, but without middleware, authentication
or a database, so the ratio of a scenario to it is the share of the server's best case
that the scenario reaches.

    uvicorn bench.ceiling:create_app --factory
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from kith.core.pagination import CursorPage
from kith.db.models import Visibility
from kith.posts.schemas import PostView
from kith.users.schemas import UserSummary

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
    """The ceiling app: GET /api/v1/feed answers the same page every time."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    page = sample_page()

    @app.get("/api/v1/feed", response_model=CursorPage[PostView])
    async def feed() -> CursorPage[PostView]:
        return page

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
