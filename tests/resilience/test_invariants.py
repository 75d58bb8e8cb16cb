"""The invariant checker finds what it is meant to find (else a fault test proves nothing)."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from kith.runtime.resources import Resources
from tests.posting import befriend, comment, create_post, member
from tests.resilience.invariants import missing_posts, violations


async def test_a_consistent_database_has_no_violations_and_each_break_is_named(
    client: httpx.AsyncClient, resources: Resources, database_url: str
) -> None:
    ada = await member(resources, "ada")
    bob = await member(resources, "bob")
    await befriend(resources, ada, bob)
    post = await create_post(client, ada, content="hello")
    await comment(client, bob, post["id"], "hi")
    media_root = resources.settings.media_root
    assert await violations(database_url, media_root) == []
    assert await missing_posts(database_url, [post["id"]]) == []
    assert await missing_posts(database_url, ["no-such-post"]) == ["no-such-post"]

    async with resources.engine.begin() as connection:
        await connection.execute(text("UPDATE posts SET like_count = 3, comment_count = 0"))
        await connection.execute(text("DELETE FROM friendships WHERE user_id = :id"), {"id": ada.id})
        await connection.execute(
            text(
                "INSERT INTO media (id, owner_id, storage_key, content_type, width, height, size,"
                " position, created_at) VALUES ('m1', :id, 'abcdef.png', 'image/png', 1, 1, 1, 0,"
                " CURRENT_TIMESTAMP)"
            ),
            {"id": ada.id},
        )
    (media_root / "ab").mkdir(parents=True, exist_ok=True)
    (media_root / "ab" / ".tmp-abandoned").write_bytes(b"half")
    found = await violations(database_url, media_root)
    assert sorted(line.split(":")[0] for line in found) == [
        "comment_count differs from comments",
        "friendship without its reverse",
        "half-written media file",
        "like_count differs from likes",
        "row points at a missing media file",
    ], found
