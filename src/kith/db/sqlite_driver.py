"""SQLite through aiosqlite in one trip to the driver's thread per statement.

aiosqlite runs each sqlite3 call in a thread of its own, and SQLAlchemy's adapter makes one
call per step: create a cursor, execute, fetch the rows, close the cursor, each a trip to
that thread and back to the event loop (a queue, a wake-up, a future). On a small machine a
trip costs about as much CPU as a small query. Here a statement is one function run in the
driver's thread that does all four steps and hands back the rows with the cursor's
description, row count and last row id; and a commit or rollback outside a transaction
(sqlite3 does nothing then) is not sent at all. Measured in docs/benchmarks.md.

Rows are fetched whole, as SQLAlchemy's adapter already does for every non-streaming
cursor; server-side cursors (`stream_results`) keep SQLAlchemy's own class.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

_Outcome = tuple[Any, int, int | None, list[Any] | None, bool]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """One statement, in the driver's thread: description, row count, last row id, the rows
    (None without a result), and whether a transaction is open after it."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, cursor.rowcount, cursor.lastrowid, rows, connection.in_transaction
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's aiosqlite cursor, each statement one trip (see the module)."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: OneTripConnection) -> None:
        # No driver cursor is kept between statements: nothing to create or close here.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    def close(self) -> None:
        self._rows.clear()

    async def _async_soft_close(self) -> None:
        return

    async def _execute_async(self, operation: Any, parameters: Any) -> Any:
        return await self._trip(operation, parameters, many=False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        return await self._trip(operation, seq_of_parameters, many=True)

    async def _trip(self, operation: Any, parameters: Any, *, many: bool) -> None:
        adapted = cast(OneTripConnection, self._adapt_connection)
        async with adapted._execute_mutex:
            driver = self._connection
            outcome: _Outcome = await driver._execute(_run, driver._conn, operation, parameters, many)
        self._description, self._rowcount, self._lastrowid, rows, adapted.in_transaction = outcome
        self._rows = collections.deque(rows) if rows is not None else collections.deque()


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection with `OneTripCursor`s, sending a commit or a
    rollback only while a transaction is open (as every statement reports)."""

    __slots__ = ("in_transaction",)
    _cursor_cls = OneTripCursor  # type: ignore[assignment]  # (a subclass of the one declared)

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self.in_transaction = False

    def rollback(self) -> None:
        if self.in_transaction:
            super().rollback()
            self.in_transaction = False

    def commit(self) -> None:
        if self.in_transaction:
            super().commit()
            self.in_transaction = False


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module SQLAlchemy's aiosqlite dialect is given (`module=`), connecting
    with `OneTripConnection`s."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def one_trip_dbapi() -> OneTripDBAPI:
    import aiosqlite

    return OneTripDBAPI(aiosqlite, sqlite3)
