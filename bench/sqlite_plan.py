"""The SQLite feed's query plan and its cost, on a benchmark data set.

    .venv/bin/python -m bench.sqlite_plan var/bench/kith_bench_full_1000000.db [--readers 50]

Prints `EXPLAIN QUERY PLAN` of the statements a first feed page runs on SQLite (the walk
through the newest posts, and the author-index plan used below the walk's window), then the
time per page of each, run straight with sqlite3 for `--readers` readers: the walk as Kith
runs it, and the author-index plan over the whole feed (the plan SQLite chose before).
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from typing import Any

from sqlalchemy.dialects import sqlite

from kith.feed.repository import _BEYOND_FIRST, _FIRST_CARDS, _WINDOWED_FIRST, FEED_WINDOW


def positional(statement: Any, values: dict[str, object]) -> tuple[str, list[object]]:
    compiled = statement.compile(dialect=sqlite.dialect())
    params = compiled.construct_params(values)
    return str(compiled), [params[name] for name in compiled.positiontup]


def main(args: argparse.Namespace) -> None:
    connection = sqlite3.connect(f"file:{args.database}?mode=ro", uri=True)
    readers = [row[0] for row in connection.execute("SELECT id FROM users LIMIT ?", (args.readers,))]

    def values(reader: str) -> dict[str, object]:
        return {"reader_id": reader, "viewer_id": reader, "limit": 21, "window": FEED_WINDOW}

    plans = {
        "walk (first page)": _WINDOWED_FIRST,
        "below the walk's window": _BEYOND_FIRST,
        "author-index plan over the whole feed": _FIRST_CARDS,
    }
    for name, statement in plans.items():
        sql, params = positional(statement, values(readers[0]))
        print(f"{name}:")
        for row in connection.execute("EXPLAIN QUERY PLAN " + sql, params):
            print(f"  {row[0]:>4} {row[1]:>4} {row[3]}")
    for name in ("walk (first page)", "author-index plan over the whole feed"):
        per_page, rows = _time(connection, plans[name], readers, values)
        print(f"{name}: {per_page:.2f} ms per page ({len(readers)} readers, {rows} rows)")


def _time(
    connection: sqlite3.Connection,
    statement: Any,
    readers: list[str],
    values: Any,
) -> tuple[float, int]:
    """Milliseconds of CPU per page of `statement` (SQLite runs in this process), and rows."""
    started = time.process_time()
    rows = 0
    for reader in readers:
        sql, params = positional(statement, values(reader))
        rows += len(connection.execute(sql, params).fetchall())
    return (time.process_time() - started) / len(readers) * 1000, rows


def page_statement_ms(database: str, readers: int = 50) -> float:
    """CPU per first feed page of the statement Kith runs on SQLite, run alone with sqlite3:
    what SQLite's own work costs the server process before Kith does anything."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        chosen = [row[0] for row in connection.execute("SELECT id FROM users LIMIT ?", (readers,))]

        def values(reader: str) -> dict[str, object]:
            return {"reader_id": reader, "viewer_id": reader, "limit": 21, "window": FEED_WINDOW}

        _time(connection, _WINDOWED_FIRST, chosen[:5], values)  # warm the page cache
        return _time(connection, _WINDOWED_FIRST, chosen, values)[0]
    finally:
        connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("database")
    parser.add_argument("--readers", type=int, default=50)
    main(parser.parse_args())
