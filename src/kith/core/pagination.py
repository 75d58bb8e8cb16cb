"""Cursor pagination (keyset on time-ordered ids) and offset pagination for directories.

Cursor lists never use OFFSET: a page continues strictly after the last id of the
previous one, so walking the pages while rows are inserted never repeats or skips a
row that existed when the walk began. What a list asks for (`CursorParams`,
`OffsetParams`) is a plain value that services take; the query parameters and the `Link`
header that advertises the next page are `kith.http.pagination`'s.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar, TypeVarTuple

import orjson
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from kith.core.errors import Unprocessable

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
    """The (time, id) pair of a `window_by_time` cursor; 422 `invalid_cursor` when malformed."""
    moment_text, _, row_id = position.partition("|")
    try:
        moment = datetime.fromisoformat(moment_text)
        if moment.tzinfo is None or not row_id:
            raise ValueError(position)
    except ValueError:
        raise InvalidCursor() from None
    return moment, row_id


@dataclass(frozen=True)
class CursorParams:
    """One page of a cursor list: at most `limit` rows, strictly after the position `after`."""

    limit: int = DEFAULT_LIMIT
    after: str | None = None

    @classmethod
    def from_cursor(cls, limit: int, cursor: str | None) -> CursorParams:
        """From a client's `cursor` (422 `invalid_cursor` when it is not one of ours)."""
        return cls(limit, decode_cursor(cursor) if cursor else None)

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

    def window_by_time(
        self,
        statement: Select[*Columns],
        time_key: InstrumentedAttribute[datetime],
        id_key: InstrumentedAttribute[str],
    ) -> Select[*Columns]:
        """Restrict `statement` to this page, newest first, keyed by (timestamp, id) rather
        than by a time-ordered id; one row extra. Run it, then `cut_by_time` the rows.

        For lists ordered by when a link was made (friendships, blocks, likes), whose rows
        have no id of their own: `id_key` breaks ties between equal timestamps.
        """
        if self.after is not None:
            moment, row_id = decode_timed_position(self.after)
            after: ColumnElement[bool] = or_(time_key < moment, and_(time_key == moment, id_key < row_id))
            statement = statement.where(after)
        return statement.order_by(time_key.desc(), id_key.desc()).limit(self.limit + 1)

    def cut_by_time(
        self, rows: list[T], moment_of: Callable[[T], datetime], id_of: Callable[[T], str]
    ) -> tuple[list[T], str | None]:
        """`cut` for a `window_by_time`: the cursor holds the last row's (timestamp, id)."""
        return self.cut(rows, lambda row: encode_timed_position(moment_of(row), id_of(row)))

    async def fetch_by_time(
        self,
        session: AsyncSession,
        statement: Select[Row, datetime],
        time_key: InstrumentedAttribute[datetime],
        id_key: InstrumentedAttribute[str],
        id_of: Callable[[Row], str],
    ) -> tuple[list[tuple[Row, datetime]], str | None]:
        """One page of `(thing, time_key)` rows by `window_by_time`; `id_of(thing)` equals `id_key`."""
        window = self.window_by_time(statement, time_key, id_key)
        rows = [(row[0], row[1]) for row in (await session.execute(window)).all()]
        return self.cut_by_time(rows, lambda row: row[1], lambda row: id_of(row[0]))


@dataclass(frozen=True)
class OffsetParams:
    """One page of a directory-style list: page `page` (from 1) of `page_size` rows."""

    page: int = 1
    page_size: int = DEFAULT_LIMIT

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
