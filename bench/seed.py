"""Build a realistic data set for benchmarks, straight into a migrated database.

    .venv/bin/python -m bench.seed --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/kith_bench \
        --users 10000 --friends 200 --posts 1000000 [--reuse]

Users share one password ("benchmark password", so login benchmarks work) and have
about `--friends` friends each (a random graph); posts are spread over the last year
with ids that match their timestamps; likes and comments follow a long-tailed
distribution, and every counter equals the rows it counts. Three more users,
`author10`, `author200` and `author2000`, have exactly that many friends (for the write
path's growth with the audience). PostgreSQL is filled with COPY; SQLite with batched
inserts (slower).

The parameters are recorded with the data set (a comment on the PostgreSQL database, a
`.bench.json` file beside the SQLite file); `--reuse` keeps a data set built with the
same parameters instead of building it again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from kith.core.config import Settings
from kith.core.security import PasswordHasher
from kith.db.engine import create_engine
from kith.db.migrate import upgrade

PASSWORD = "benchmark password"
VISIBILITIES = ["friends"] * 14 + ["public"] * 5 + ["private"]
# Users with an exact friend count, whose posts measure the write path's growth.
AUTHOR_AUDIENCES = (10, 200, 2000)


@dataclass(frozen=True)
class DataSetSpec:
    """What a data set is built from; equal specs build equal data sets."""

    users: int = 10_000
    friends: int = 200
    posts: int = 1_000_000
    like_ratio: float = 0.6
    comment_ratio: float = 0.3
    seed: int = 42

    def describe(self) -> str:
        return "kith-bench " + json.dumps(asdict(self), sort_keys=True)


def uuid7_at(ms: int, rng: random.Random) -> str:
    """A UUIDv7 for a given millisecond, so ids sort like the timestamps they carry."""
    value = (
        (ms & ((1 << 48) - 1)) << 80
        | 0x7 << 76
        | rng.getrandbits(12) << 64
        | 0b10 << 62
        | rng.getrandbits(62)
    )
    return str(uuid.UUID(int=value))


def user_rows(count: int, password_hash: str, rng: random.Random, start: datetime) -> list[dict[str, Any]]:
    rows = []
    for index in range(count):
        created = start + timedelta(seconds=index)
        rows.append(
            {
                "id": uuid7_at(int(created.timestamp() * 1000), rng),
                "username": f"user{index}",
                "username_key": f"user{index}",
                "email": f"user{index}@bench.example",
                "email_verified": True,
                "display_name": f"User {index}",
                "bio": "",
                "password_hash": password_hash,
                "role": "user",
                "suspended": False,
                "created_at": created,
                "updated_at": created,
            }
        )
    return rows


def author_rows(users: int, password_hash: str, rng: random.Random, start: datetime) -> list[dict[str, Any]]:
    """The fixed-audience authors, after the ordinary users."""
    rows = user_rows(users + len(AUTHOR_AUDIENCES), password_hash, rng, start)[users:]
    for row, audience in zip(rows, AUTHOR_AUDIENCES, strict=True):
        name = f"author{audience}"
        row.update(username=name, username_key=name, email=f"{name}@bench.example", display_name=name)
    return rows


def friend_pairs(user_ids: Sequence[str], degree: int, rng: random.Random) -> set[tuple[str, str]]:
    """A random graph where each user has about `degree` friends."""
    pairs: set[tuple[str, str]] = set()
    count = len(user_ids)
    target = count * degree // 2
    while len(pairs) < target:
        first, second = rng.randrange(count), rng.randrange(count)
        if first != second:
            low, high = sorted((user_ids[first], user_ids[second]))
            pairs.add((low, high))
    return pairs


def post_batches(
    user_ids: Sequence[str], total: int, rng: random.Random, batch: int, now: datetime
) -> Iterator[list[dict[str, Any]]]:
    # Activity is long-tailed: a few users post a lot.
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(user_ids))]
    year_ms = 365 * 24 * 3600 * 1000
    end_ms = int(now.timestamp() * 1000)
    stamps = sorted(end_ms - rng.randrange(year_ms) for _ in range(total))
    authors = rng.choices(user_ids, weights=weights, k=total)
    for offset in range(0, total, batch):
        rows = []
        for ms, author in zip(stamps[offset : offset + batch], authors[offset : offset + batch], strict=True):
            created = datetime.fromtimestamp(ms / 1000, UTC)
            rows.append(
                {
                    "id": uuid7_at(ms, rng),
                    "author_id": author,
                    "content": f"Post at {created:%Y-%m-%d %H:%M} by {author[:8]}",
                    "visibility": rng.choice(VISIBILITIES),
                    "like_count": 0,
                    "comment_count": 0,
                    "created_at": created,
                    "edited_at": None,
                }
            )
        yield rows


async def copy_rows(connection: Any, table: str, rows: list[dict[str, Any]]) -> None:
    """COPY on PostgreSQL (asyncpg), batched INSERT elsewhere."""
    if not rows:
        return
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if connection.dialect.name == "postgresql":
        columns = list(rows[0])
        await driver.copy_records_to_table(
            table, records=[tuple(row[c] for c in columns) for row in rows], columns=columns
        )
    else:
        # Straight to the driver: SQLAlchemy's per-value processing would take minutes for
        # a million posts. Values are stored as SQLAlchemy stores them on SQLite.
        columns = list(rows[0])
        statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"  # noqa: S608 - our own table and columns
        await driver.executemany(statement, [tuple(_sqlite_value(row[c]) for c in columns) for row in rows])


def _sqlite_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


@asynccontextmanager
async def _server_connection(url: URL) -> AsyncIterator[Any]:
    """An asyncpg connection to the `postgres` database of `url`'s server, for work on
    databases themselves (create, drop, comment)."""
    import asyncpg

    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database="postgres"
    )
    try:
        yield admin
    finally:
        await admin.close()


async def recorded_spec(database_url: str) -> str | None:
    """The spec a data set was built from, or None if there is none (or it is unfinished)."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        async with _server_connection(url) as admin:
            comment = await admin.fetchval(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
                url.database,
            )
        return str(comment) if comment else None
    marker = Path(f"{url.database}.bench.json")
    return marker.read_text() if marker.exists() else None


async def _record_spec(database_url: str, spec: DataSetSpec) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        async with _server_connection(url) as admin:
            literal = spec.describe().replace("'", "''")
            await admin.execute(f"COMMENT ON DATABASE \"{url.database}\" IS '{literal}'")
    else:
        Path(f"{url.database}.bench.json").write_text(spec.describe())


async def ensure(database_url: str, spec: DataSetSpec, *, reuse: bool = True) -> bool:
    """Put a fresh copy of the data set at `database_url`; True if it had to be built.

    The data set is built once into a pristine copy beside it (`seed_url`: a PostgreSQL
    database used as a template, or a SQLite file) and copied from there before every run.
    A run writes (posts, likes, comments, friendships): reused as it was, the data set of
    the next run would have thousands of the benchmark's own posts at the top of every
    feed, and its figures would no longer be comparable.
    """
    pristine = seed_url(database_url)
    built = not (reuse and await recorded_spec(pristine) == spec.describe())
    if built:
        await seed(pristine, spec)
    else:
        print(f"reusing the data set in {make_url(pristine).database} ({spec.describe()})")
    await _copy_data_set(pristine, database_url)
    return built


async def restore(database_url: str) -> None:
    """Copy the pristine data set over `database_url` again: what an earlier configuration of
    the run wrote (its posts on top of every feed) is gone."""
    await _copy_data_set(seed_url(database_url), database_url)


def seed_url(database_url: str) -> str:
    """Where the pristine copy of the data set for `database_url` is kept."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return url.set(database=f"{url.database}_seed").render_as_string(hide_password=False)
    assert url.database
    return url.set(database=url.database.removesuffix(".db") + ".seed.db").render_as_string(
        hide_password=False
    )


async def _copy_data_set(source_url: str, target_url: str) -> None:
    source, target = make_url(source_url), make_url(target_url)
    if target.get_backend_name() == "postgresql":
        async with _server_connection(target) as admin:
            await admin.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
            # FILE_COPY: the files copied as they are (PostgreSQL 15's default, WAL_LOG, would
            # write the whole data set through the WAL, and its checkpoint into the next run).
            await admin.execute(
                f'CREATE DATABASE "{target.database}" TEMPLATE "{source.database}" STRATEGY = FILE_COPY'
            )
        return
    assert source.database and target.database
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(target.database + suffix):
            os.remove(target.database + suffix)
    for suffix in ("", "-wal"):
        if os.path.exists(source.database + suffix):
            await asyncio.to_thread(shutil.copyfile, source.database + suffix, target.database + suffix)


async def seed(database_url: str, spec: DataSetSpec) -> None:
    """Drop whatever is at `database_url` and build the data set there."""
    rng = random.Random(spec.seed)
    settings = Settings(database_url=database_url, _env_file=None)
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        await _recreate_postgres_database(database_url)
    elif url.database:
        for suffix in ("", "-wal", "-shm", ".bench.json"):
            if os.path.exists(url.database + suffix):
                os.remove(url.database + suffix)
    await asyncio.to_thread(upgrade, database_url)
    engine = create_engine(settings)
    now = datetime.now(UTC)
    password_hash = await PasswordHasher(settings).hash(PASSWORD)
    started = time.perf_counter()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as progress:
        users = user_rows(spec.users, password_hash, rng, now - timedelta(days=400))
        user_ids = [row["id"] for row in users]
        authors = author_rows(spec.users, password_hash, rng, now - timedelta(days=400))
        task = progress.add_task("users", total=len(users) + len(authors))
        async with engine.begin() as connection:
            for offset in range(0, len(users), 5000):
                await copy_rows(connection, "users", users[offset : offset + 5000])
                progress.advance(task, min(5000, len(users) - offset))
            await copy_rows(connection, "users", authors)
            progress.advance(task, len(authors))

        pairs = friend_pairs(user_ids, spec.friends, rng)
        for author, audience in zip(authors, AUTHOR_AUDIENCES, strict=True):
            for friend in rng.sample(user_ids, min(audience, len(user_ids))):
                pairs.add((min(author["id"], friend), max(author["id"], friend)))
        task = progress.add_task("friendships", total=len(pairs))
        since = now - timedelta(days=380)
        batch: list[dict[str, Any]] = []
        async with engine.begin() as connection:
            for low, high in pairs:
                batch.append({"user_id": low, "friend_id": high, "created_at": since})
                batch.append({"user_id": high, "friend_id": low, "created_at": since})
                if len(batch) >= 20000:
                    await copy_rows(connection, "friendships", batch)
                    progress.advance(task, len(batch) // 2)
                    batch = []
            await copy_rows(connection, "friendships", batch)
            progress.advance(task, len(batch) // 2)

        task = progress.add_task("posts, likes, comments", total=spec.posts)
        for rows in post_batches(user_ids, spec.posts, rng, 20000, now):
            likes: list[dict[str, Any]] = []
            comments: list[dict[str, Any]] = []
            for post in rows:
                # Long tail: most posts get a few likes, some get many.
                like_count = (
                    min(int(rng.paretovariate(1.5)) - 1, 200) if rng.random() < spec.like_ratio else 0
                )
                for liker in rng.sample(user_ids, like_count):
                    likes.append({"post_id": post["id"], "user_id": liker, "created_at": post["created_at"]})
                post["like_count"] = like_count
                comment_count = rng.choice((0, 0, 0, 1, 1, 2)) if rng.random() < spec.comment_ratio else 0
                for _ in range(comment_count):
                    comment_ms = int(post["created_at"].timestamp() * 1000) + rng.randrange(1, 3_600_000)
                    comments.append(
                        {
                            "id": uuid7_at(comment_ms, rng),
                            "post_id": post["id"],
                            "author_id": rng.choice(user_ids),
                            "content": "Nice!",
                            "created_at": datetime.fromtimestamp(comment_ms / 1000, UTC),
                            "edited_at": None,
                        }
                    )
                post["comment_count"] = comment_count
            async with engine.begin() as connection:
                await copy_rows(connection, "posts", rows)
                await copy_rows(connection, "likes", likes)
                await copy_rows(connection, "comments", comments)
            progress.advance(task, len(rows))
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))
    await engine.dispose()
    await _record_spec(database_url, spec)
    print(
        f"seeded {spec.users} users, {len(pairs)} friendships, {spec.posts} posts "
        f"in {time.perf_counter() - started:.0f} s"
    )


async def _recreate_postgres_database(database_url: str) -> None:
    url = make_url(database_url)
    async with _server_connection(url) as admin:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{url.database}"')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url", required=True, help="Dropped and recreated (PostgreSQL) or replaced (SQLite)."
    )
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--friends", type=int, default=200, help="Average friends per user.")
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--like-ratio", type=float, default=0.6, help="Share of posts with any likes.")
    parser.add_argument("--comment-ratio", type=float, default=0.3, help="Share of posts with any comments.")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--reuse", action="store_true", help="Keep a data set built with the same parameters."
    )
    args = parser.parse_args()
    spec = DataSetSpec(
        users=args.users,
        friends=args.friends,
        posts=args.posts,
        like_ratio=args.like_ratio,
        comment_ratio=args.comment_ratio,
        seed=args.seed,
    )
    asyncio.run(ensure(args.database_url, spec, reuse=args.reuse))


if __name__ == "__main__":
    main()
