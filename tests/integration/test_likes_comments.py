"""Likes and comments through the HTTP API, and counters through account deletion.

See docs/api.md#posts-media-likes-comments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from kith.db.models import Role
from kith.runtime.resources import Resources
from tests.helpers import API, PASSWORD, Account, assert_problem, field_errors
from tests.posting import (
    audit_entries,
    befriend,
    block,
    comment,
    counted_rows,
    create_post,
    get_post,
    member,
    members,
    set_suspended,
    walk,
)

COMMENT_FIELDS = {"id", "post_id", "author", "content", "created_at", "edited_at"}


async def like(client: httpx.AsyncClient, account: Account, post_id: str) -> httpx.Response:
    return await client.post(f"{API}/posts/{post_id}/like", headers=account.headers)


async def unlike(client: httpx.AsyncClient, account: Account, post_id: str) -> httpx.Response:
    return await client.delete(f"{API}/posts/{post_id}/like", headers=account.headers)


# --- likes ----------------------------------------------------------------------------


async def test_like_is_201_first_then_200_and_counts_once(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await member(resources, "ada"), await member(resources, "bob")
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    first = await like(client, bob, post_id)
    assert first.status_code == 201
    assert first.json() == {"like_count": 1, "liked_by_me": True}
    again = await like(client, bob, post_id)
    assert again.status_code == 200
    assert again.json() == {"like_count": 1, "liked_by_me": True}
    assert (await like(client, ada, post_id)).json() == {"like_count": 2, "liked_by_me": True}

    seen_by_bob = await get_post(client, bob, post_id)
    assert (seen_by_bob["like_count"], seen_by_bob["liked_by_me"]) == (2, True)
    cy = await member(resources, "cy")
    seen_by_cy = await get_post(client, cy, post_id)
    assert (seen_by_cy["like_count"], seen_by_cy["liked_by_me"]) == (2, False)
    assert await counted_rows(resources, post_id) == (2, 2, 0, 0)


async def test_unlike_is_idempotent(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob = await member(resources, "ada"), await member(resources, "bob")
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    await like(client, bob, post_id)
    for _ in range(2):
        response = await unlike(client, bob, post_id)
        assert response.status_code == 204
        assert response.content == b""
    post = await get_post(client, bob, post_id)
    assert (post["like_count"], post["liked_by_me"]) == (0, False)
    assert await counted_rows(resources, post_id) == (0, 0, 0, 0)
    # Liking again after unliking counts again.
    assert (await like(client, bob, post_id)).status_code == 201
    assert await counted_rows(resources, post_id) == (1, 1, 0, 0)


async def test_likers_newest_first_with_pages(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    likers = [await member(resources, f"fan{n}") for n in range(5)]
    for fan in likers:
        assert (await like(client, fan, post_id)).status_code == 201
    items = await walk(client, ada, f"/posts/{post_id}/likes", 2)
    assert [item["id"] for item in items] == [fan.id for fan in reversed(likers)]
    assert set(items[0]) == {"id", "username", "display_name", "avatar_url", "liked_at"}
    assert items[0]["username"] == "fan4"
    assert items[0]["liked_at"].endswith("Z")
    assert [item["liked_at"] for item in items] == sorted((item["liked_at"] for item in items), reverse=True)


async def test_likers_pages_are_stable_when_likes_arrive(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    fans = [await member(resources, f"fan{n}") for n in range(4)]
    for fan in fans:
        await like(client, fan, post_id)
    first = (
        await client.get(f"{API}/posts/{post_id}/likes", params={"limit": 2}, headers=ada.headers)
    ).json()
    await like(client, await member(resources, "late"), post_id)
    rest = await client.get(
        f"{API}/posts/{post_id}/likes",
        params={"limit": 2, "cursor": first["next_cursor"]},
        headers=ada.headers,
    )
    assert [item["id"] for item in first["items"] + rest.json()["items"]] == [
        fan.id for fan in reversed(fans)
    ]


async def test_likers_reject_a_forged_cursor(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    post_id = (await create_post(client, ada))["id"]
    response = await client.get(
        f"{API}/posts/{post_id}/likes", params={"cursor": "bm9wZQ"}, headers=ada.headers
    )
    assert_problem(response, 422, "invalid_cursor")


async def test_likers_hidden_by_blocks_and_suspension(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cy, dee = await members(resources, "ada", "bob", "cy", "dee")
    moderator = await member(resources, "moder", Role.moderator)
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    for fan in (bob, cy, dee):
        await like(client, fan, post_id)
    await block(resources, bob, ada)
    await set_suspended(resources, cy)
    items = await walk(client, ada, f"/posts/{post_id}/likes", 10)
    assert [item["id"] for item in items] == [dee.id]
    assert {item["id"] for item in await walk(client, moderator, f"/posts/{post_id}/likes", 10)} == {
        bob.id,
        cy.id,
        dee.id,
    }


async def test_friends_only_post_can_be_liked_by_friends_not_strangers(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, friend, stranger = await members(resources, "ada", "friend", "stranger")
    await befriend(resources, ada, friend)
    post_id = (await create_post(client, ada))["id"]
    assert (await like(client, friend, post_id)).status_code == 201
    assert_problem(await like(client, stranger, post_id), 404, "post_not_found")
    assert await counted_rows(resources, post_id) == (1, 1, 0, 0)


# --- comments -------------------------------------------------------------------------


async def test_comment_is_created_and_counted(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob = await member(resources, "ada"), await member(resources, "bob")
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    response = await client.post(
        f"{API}/posts/{post_id}/comments", json={"content": "  Lovely!  "}, headers=bob.headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == COMMENT_FIELDS
    assert (body["post_id"], body["content"], body["edited_at"]) == (post_id, "Lovely!", None)
    assert body["author"] == {"id": bob.id, "username": "bob", "display_name": "Bob", "avatar_url": None}
    assert body["created_at"].endswith("Z")
    assert (await get_post(client, ada, post_id))["comment_count"] == 1
    assert await counted_rows(resources, post_id) == (0, 0, 1, 1)


@pytest.mark.parametrize(
    "body",
    [{}, {"content": ""}, {"content": "   "}, {"content": "x" * 2001}, {"content": "ok", "post_id": "x"}],
)
async def test_comment_rejects_invalid_bodies(
    client: httpx.AsyncClient, resources: Resources, body: dict[str, Any]
) -> None:
    ada = await member(resources, "ada")
    post_id = (await create_post(client, ada))["id"]
    response = await client.post(f"{API}/posts/{post_id}/comments", json=body, headers=ada.headers)
    assert_problem(response, 422)
    assert field_errors(response) & {"body.content", "body.post_id"}
    assert await counted_rows(resources, post_id) == (0, 0, 0, 0)


async def test_comments_oldest_first_with_pages(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob = await member(resources, "ada"), await member(resources, "bob")
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    written = [(await comment(client, bob if n % 2 else ada, post_id, f"c{n}"))["id"] for n in range(5)]
    items = await walk(client, bob, f"/posts/{post_id}/comments", 2)
    assert [item["id"] for item in items] == written
    assert [item["content"] for item in items] == [f"c{n}" for n in range(5)]


async def test_comments_hide_blocked_and_suspended_authors(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cy, dee, eve = await members(resources, "ada", "bob", "cy", "dee", "eve")
    admin = await member(resources, "root", Role.admin)
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    by = {}
    for author in (bob, cy, dee, eve):
        by[author.username] = (await comment(client, author, post_id, f"from {author.username}"))["id"]
    await block(resources, dee, bob)  # dee blocked bob: hidden from each other
    await block(resources, cy, dee)  # cy blocked dee: hidden from each other
    await set_suspended(resources, eve)

    def authors(items: list[dict[str, Any]]) -> list[str]:
        return [item["author"]["username"] for item in items]

    assert authors(await walk(client, dee, f"/posts/{post_id}/comments", 10)) == ["dee"]
    assert authors(await walk(client, bob, f"/posts/{post_id}/comments", 10)) == ["bob", "cy"]
    assert authors(await walk(client, ada, f"/posts/{post_id}/comments", 10)) == ["bob", "cy", "dee"]
    assert authors(await walk(client, admin, f"/posts/{post_id}/comments", 10)) == ["bob", "cy", "dee", "eve"]
    # A hidden comment is 404 for edits and deletes too.
    response = await client.delete(f"{API}/comments/{by['bob']}", headers=dee.headers)
    assert_problem(response, 404, "comment_not_found")


async def test_comments_on_hidden_posts_are_404(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, friend, stranger = await members(resources, "ada", "friend", "stranger")
    await befriend(resources, ada, friend)
    post_id = (await create_post(client, ada, visibility="friends"))["id"]
    comment_id = (await comment(client, friend, post_id))["id"]
    assert_problem(
        await client.post(
            f"{API}/posts/{post_id}/comments", json={"content": "hi"}, headers=stranger.headers
        ),
        404,
        "post_not_found",
    )
    assert_problem(await client.get(f"{API}/posts/{post_id}/comments", headers=stranger.headers), 404)
    # The friend loses access when the post turns private: their own comment goes with it.
    await client.patch(f"{API}/posts/{post_id}", json={"visibility": "private"}, headers=ada.headers)
    for attempt in (
        client.patch(f"{API}/comments/{comment_id}", json={"content": "edit"}, headers=friend.headers),
        client.delete(f"{API}/comments/{comment_id}", headers=friend.headers),
    ):
        assert_problem(await attempt, 404, "comment_not_found")
    assert await counted_rows(resources, post_id) == (0, 0, 1, 1)


async def test_author_edits_own_comment_only(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob = await member(resources, "ada"), await member(resources, "bob")
    moderator = await member(resources, "moder", Role.moderator)
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    written = await comment(client, bob, post_id, "first try")
    resources.clock.advance(minutes=1)
    response = await client.patch(
        f"{API}/comments/{written['id']}", json={"content": " fixed "}, headers=bob.headers
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert edited["content"] == "fixed"
    assert edited["edited_at"] > edited["created_at"] == written["created_at"]
    for other in (ada, moderator):
        response = await client.patch(
            f"{API}/comments/{written['id']}", json={"content": "x"}, headers=other.headers
        )
        assert_problem(response, 404, "comment_not_found")
    response = await client.patch(
        f"{API}/comments/{written['id']}", json={"content": ""}, headers=bob.headers
    )
    assert_problem(response, 422)
    [listed] = await walk(client, ada, f"/posts/{post_id}/comments", 5)
    assert listed == edited


async def test_who_may_delete_a_comment(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob, cy = await members(resources, "ada", "bob", "cy")
    moderator = await member(resources, "moder", Role.moderator)
    admin = await member(resources, "root", Role.admin)
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    by_author = (await comment(client, bob, post_id))["id"]
    by_post_author = (await comment(client, bob, post_id))["id"]
    by_moderator = (await comment(client, bob, post_id))["id"]
    by_admin = (await comment(client, cy, post_id))["id"]
    assert await counted_rows(resources, post_id) == (0, 0, 4, 4)

    # Another reader of the post may not.
    assert_problem(
        await client.delete(f"{API}/comments/{by_author}", headers=cy.headers), 404, "comment_not_found"
    )
    for comment_id, actor in (
        (by_author, bob),
        (by_post_author, ada),
        (by_moderator, moderator),
        (by_admin, admin),
    ):
        response = await client.delete(f"{API}/comments/{comment_id}", headers=actor.headers)
        assert response.status_code == 204, response.text
        assert_problem(await client.delete(f"{API}/comments/{comment_id}", headers=actor.headers), 404)
    assert await walk(client, ada, f"/posts/{post_id}/comments", 10) == []
    assert await counted_rows(resources, post_id) == (0, 0, 0, 0)

    entries = await audit_entries(client, admin, "comment.removed")
    assert sorted((entry["actor_id"], entry["target_id"]) for entry in entries) == sorted(
        [(moderator.id, by_moderator), (admin.id, by_admin)]
    )
    assert all(entry["details"]["post_id"] == post_id for entry in entries)


# --- account deletion keeps counters equal to rows ------------------------------------


async def test_deleting_an_account_takes_its_likes_and_comments_off_the_counters(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, leaver = await members(resources, "ada", "bob", "leaver")
    ada_post = (await create_post(client, ada, visibility="public"))["id"]
    bob_post = (await create_post(client, bob, visibility="public"))["id"]
    leaver_post = (await create_post(client, leaver, visibility="public"))["id"]
    for post_id in (ada_post, bob_post, leaver_post):
        await like(client, leaver, post_id)
        await like(client, ada, post_id)
        await comment(client, leaver, post_id)
        await comment(client, leaver, post_id)
        await comment(client, bob, post_id)
    assert await counted_rows(resources, ada_post) == (2, 2, 3, 3)

    response = await client.request(
        "DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=leaver.headers
    )
    assert response.status_code == 204, response.text
    for post_id in (ada_post, bob_post):
        assert await counted_rows(resources, post_id) == (1, 1, 1, 1)
        post = await get_post(client, ada, post_id)
        assert (post["like_count"], post["comment_count"]) == (1, 1)
    assert_problem(await client.get(f"{API}/posts/{leaver_post}", headers=ada.headers), 404)


async def test_admin_deleting_an_account_keeps_counters_right(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, leaver = await member(resources, "ada"), await member(resources, "leaver")
    admin = await member(resources, "root", Role.admin)
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    await like(client, leaver, post_id)
    await comment(client, leaver, post_id)
    await comment(client, ada, post_id)
    response = await client.delete(f"{API}/admin/users/{leaver.id}", headers=admin.headers)
    assert response.status_code == 204, response.text
    assert await counted_rows(resources, post_id) == (0, 0, 1, 1)


async def test_writes_make_the_fewest_statements(client: httpx.AsyncClient, resources: Resources) -> None:
    # The post (for its visibility), then only the writes: the like or comment, its
    # counter, its notification (inserted unless an unread one is there, in the same
    # statement). No unread count: open streams count for themselves. No session check
    # either: the caller's session was found live a moment ago (the session cache).
    # SQLite adds its BEGIN IMMEDIATE.
    author, fan = await member(resources, "author"), await member(resources, "fan")
    await befriend(resources, author, fan)
    created = await client.post(
        f"{API}/posts", json={"content": "x", "visibility": "friends"}, headers=author.headers
    )
    post_id = created.json()["id"]
    assert (await client.get(f"{API}/users/me", headers=fan.headers)).status_code == 200
    statements: list[str] = []

    def count(*args: Any) -> None:
        if not args[2].startswith("BEGIN"):
            statements.append(args[2])

    writes: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
        "like": lambda: client.post(f"{API}/posts/{post_id}/like", headers=fan.headers),
        "comment": lambda: client.post(
            f"{API}/posts/{post_id}/comments", json={"content": "c"}, headers=fan.headers
        ),
        "create post": lambda: client.post(f"{API}/posts", json={"content": "y"}, headers=fan.headers),
    }
    counts: dict[str, int] = {}
    event.listen(resources.engine.sync_engine, "before_cursor_execute", count)
    try:
        for name, write in writes.items():
            statements.clear()
            assert (await write()).status_code == 201
            counts[name] = len(statements)
    finally:
        event.remove(resources.engine.sync_engine, "before_cursor_execute", count)
    assert counts == {"like": 4, "comment": 4, "create post": 1}
