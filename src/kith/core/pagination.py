"""Cursor pagination (keyset on time-ordered ids) and offset pagination for directories.

Cursor lists never use OFFSET: a page continues strictly after the last id of the
previous one, so walking the pages while rows are inserted never repeats or skips a
row that existed when the walk began.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Generic, TypeVar, TypeVarTuple

import orjson
from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from kith.core.errors import Unprocessable
from kith.core.http import public_url

T = TypeVar("T")
Row = TypeVar("Row")
Columns = TypeVarTuple("Columns")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


class InvalidCursor(Unprocessable):
    code = "invalid_cursor"
    default_detail = "The cursor is not valid; use `next_cursor` from a previous page."
    description = "The `cursor` parameter did not come from a previous page."


class CursorPage(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last.")


class OffsetPage(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int
    total_pages: int


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"after": position})).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        position = data["after"]
        if not isinstance(position, str) or not 1 <= len(position) <= 100 or "\x00" in position:
            raise ValueError(position)
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeEncodeError):
        raise InvalidCursor() from None
    return position


def encode_timed_position(moment: datetime, row_id: str) -> str:
    return f"{moment.isoformat()}|{row_id}"


def decode_timed_position(position: str) -> tuple[datetime, str]:
    """The (time, id) pair of a `fetch_by_time` cursor; 422 `invalid_cursor` when malformed."""
    moment_text, _, row_id = position.partition("|")
    try:
        moment = datetime.fromisoformat(moment_text)
        if moment.tzinfo is None or not row_id:
            raise ValueError(position)
    except ValueError:
        raise InvalidCursor() from None
    return moment, row_id


CursorQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        description="Opaque: `next_cursor` of the previous page; anything else is 422 `invalid_cursor`.",
        # A format of its own, so tools know that not every string of 200 characters is one.
        json_schema_extra={"format": "cursor"},
    ),
]


class CursorParams:
    """`?limit=&cursor=` for one list; builds the page and its `Link` header."""

    def __init__(
        self,
        request: Request,
        response: Response,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
        cursor: CursorQuery = None,
    ) -> None:
        self.request = request
        self.response = response
        self.limit = limit
        self.after = decode_cursor(cursor) if cursor else None

    async def fetch(
        self,
        session: AsyncSession,
        statement: Select[Row],
        key: InstrumentedAttribute[str],
        *,
        descending: bool = True,
    ) -> tuple[list[Row], str | None]:
        """Run `statement` as one page ordered by the unique, time-ordered `key`."""
        rows = list((await session.scalars(self.window(statement, key, descending=descending))).all())
        return self.cut(rows, lambda row: str(getattr(row, key.key)))

    def window(
        self, statement: Select[*Columns], key: InstrumentedAttribute[str], *, descending: bool = True
    ) -> Select[*Columns]:
        """Restrict `statement` to this page: after the cursor, ordered by `key`, one row extra.

        For statements that return several entities per row; run it, then `cut` the rows.
        """
        if self.after is not None:
            statement = statement.where(key < self.after if descending else key > self.after)
        return statement.order_by(key.desc() if descending else key.asc()).limit(self.limit + 1)

    def cut(self, rows: list[T], position: Callable[[T], str]) -> tuple[list[T], str | None]:
        """Drop the extra row a window fetched; the cursor continues after the last row kept."""
        if len(rows) <= self.limit:
            return rows, None
        rows = rows[: self.limit]
        return rows, encode_cursor(position(rows[-1]))

    async def fetch_by_time(
        self,
        session: AsyncSession,
        statement: Select[Row, datetime],
        time_key: InstrumentedAttribute[datetime],
        id_key: InstrumentedAttribute[str],
        id_of: Callable[[Row], str],
    ) -> tuple[list[tuple[Row, datetime]], str | None]:
        """One page, newest first, of rows keyed by (timestamp, id) rather than by a time-ordered id.

        For lists ordered by when a link was made (friendships, blocks), whose rows have
        no id of their own. `statement` selects `(thing, time_key)`; `id_of(thing)` equals
        `id_key` and breaks ties between equal timestamps.
        """
        if self.after is not None:
            moment, row_id = decode_timed_position(self.after)
            after: ColumnElement[bool] = or_(time_key < moment, and_(time_key == moment, id_key < row_id))
            statement = statement.where(after)
        statement = statement.order_by(time_key.desc(), id_key.desc()).limit(self.limit + 1)
        rows = [(row[0], row[1]) for row in (await session.execute(statement)).all()]
        if len(rows) <= self.limit:
            return rows, None
        rows = rows[: self.limit]
        thing, moment = rows[-1]
        return rows, encode_cursor(encode_timed_position(moment, id_of(thing)))

    def page(self, items: Sequence[T], next_cursor: str | None) -> CursorPage[T]:
        """Wrap `items` and advertise the next page in an RFC 8288 `Link` header."""
        if next_cursor is not None:
            query = self.request.url.include_query_params(cursor=next_cursor, limit=self.limit).query
            url = public_url(self.request, f"{self.request.url.path}?{query}")
            self.response.headers["Link"] = f'<{url}>; rel="next"'
        return CursorPage[T](items=list(items), next_cursor=next_cursor)


class OffsetParams:
    """`?page=&page_size=` for directory-style lists."""

    def __init__(
        self,
        page: Annotated[int, Query(ge=1, le=100_000, description="Page number, from 1.")] = 1,
        page_size: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
    ) -> None:
        self.page = page
        self.page_size = page_size

    async def fetch(self, session: AsyncSession, statement: Select[Row]) -> tuple[list[Row], int]:
        """Run `statement` (already ordered) for this page; returns rows and the total."""
        total = await session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
        rows = await session.scalars(statement.limit(self.page_size).offset((self.page - 1) * self.page_size))
        return list(rows.all()), int(total or 0)

    def result(self, items: Sequence[T], total: int) -> OffsetPage[T]:
        return OffsetPage[T](
            items=list(items),
            total=total,
            page=self.page,
            page_size=self.page_size,
            total_pages=math.ceil(total / self.page_size) if total else 0,
        )


# FastAPI runs a class or a plain `def` dependency in a worker thread; these async
# factories keep the parameters on the event loop (two thread hops less per list).


async def cursor_params(
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> CursorParams:
    return CursorParams(request, response, limit, cursor)


async def offset_params(
    page: Annotated[int, Query(ge=1, le=100_000, description="Page number, from 1.")] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
) -> OffsetParams:
    return OffsetParams(page, page_size)


CursorDep = Annotated[CursorParams, Depends(cursor_params)]
OffsetDep = Annotated[OffsetParams, Depends(offset_params)]
