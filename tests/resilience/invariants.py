"""What "nothing lost" means, checked in SQL after a fault.

`await violations(database_url, media_root)` returns one line per broken promise, so a test
asserts `== []` and a failure names every problem at once:

- counters equal the rows they count (`posts.like_count`, `posts.comment_count`);
- friendships come in pairs, and never between users where one blocks the other;
- a pending friend request holds its pair key, a settled one does not;
- no row points at a missing media file (media rows, avatars), and no finished file is
  left half-written beside them (`.tmp-*`);
- a finished idempotency key has its recorded answer.

Rows that are merely absent (a request that failed) are not violations; the tests that
send requests check that every 2xx answer's resource is here (`missing_posts`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

CHECKS: dict[str, str] = {
    "like_count differs from likes": """
        SELECT p.id FROM posts p
        WHERE p.like_count <> (SELECT count(*) FROM likes l WHERE l.post_id = p.id)""",
    "comment_count differs from comments": """
        SELECT p.id FROM posts p
        WHERE p.comment_count <> (SELECT count(*) FROM comments c WHERE c.post_id = p.id)""",
    "friendship without its reverse": """
        SELECT f.user_id || ':' || f.friend_id FROM friendships f
        WHERE NOT EXISTS (SELECT 1 FROM friendships r
                          WHERE r.user_id = f.friend_id AND r.friend_id = f.user_id)""",
    "friends who block each other": """
        SELECT f.user_id || ':' || f.friend_id FROM friendships f
        JOIN blocks b ON b.blocker_id = f.user_id AND b.blocked_id = f.friend_id""",
    "pending request without its pair key": """
        SELECT id FROM friend_requests WHERE status = 'pending' AND pending_pair IS NULL""",
    "settled request holding a pair key": """
        SELECT id FROM friend_requests WHERE status <> 'pending' AND pending_pair IS NOT NULL""",
    "request between friends still pending": """
        SELECT r.id FROM friend_requests r
        JOIN friendships f ON f.user_id = r.sender_id AND f.friend_id = r.receiver_id
        WHERE r.status = 'pending'""",
    "finished idempotency key without its answer": """
        SELECT id FROM idempotency_keys
        WHERE state <> 'in_progress' AND (response_status IS NULL OR response_body IS NULL)""",
}

MEDIA_KEYS = """
    SELECT storage_key FROM media
    UNION SELECT avatar_key FROM users WHERE avatar_key IS NOT NULL"""


async def violations(database_url: str, media_root: Path | None = None) -> list[str]:
    """Every broken promise in the database at `database_url` (Kith's own URL) and, when
    given, its media directory."""
    found: list[str] = []
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            for name, query in CHECKS.items():
                rows = [str(row[0]) for row in await connection.execute(text(query))]
                found.extend(f"{name}: {row}" for row in rows)
            keys = [str(row[0]) for row in await connection.execute(text(MEDIA_KEYS))]
    finally:
        await engine.dispose()
    if media_root is not None:
        found.extend(
            f"row points at a missing media file: {key}" for key in keys if not _stored(media_root, key)
        )
        found.extend(f"half-written media file: {path}" for path in _temporaries(media_root))
    return found


async def missing_posts(database_url: str, post_ids: Iterable[str]) -> list[str]:
    """Those of `post_ids` (each answered 201 to a client) that the database does not hold."""
    wanted = set(post_ids)
    if not wanted:
        return []
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            held = {str(row[0]) for row in await connection.execute(text("SELECT id FROM posts"))}
    finally:
        await engine.dispose()
    return sorted(wanted - held)


def _stored(media_root: Path, key: str) -> bool:
    return (media_root / key[:2] / key).is_file()


def _temporaries(media_root: Path) -> list[Path]:
    if not media_root.exists():
        return []
    return [path for path in media_root.glob("*/.tmp-*") if path.is_file()]
