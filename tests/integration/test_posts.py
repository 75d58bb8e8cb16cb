"""Posts through the HTTP API: writing, reading, editing and deleting posts, and who sees what.

See docs/api.md#posts-media-likes-comments.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection

from kith.db.models import Comment, Like, Media, Post, Role
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.helpers import API, MEDIA, assert_problem, field_errors
from tests.posting import (
    audit_entries,
    befriend,
    block,
    comment,
    create_post,
    get_post,
    member,
    set_suspended,
    upload,
    walk,
)

POST_FIELDS = {
    "id",
    "author",
    "content",
    "visibility",
    "media",
    "like_count",
    "comment_count",
    "liked_by_me",
    "created_at",
    "edited_at",
}


# --- creating -------------------------------------------------------------------------


async def test_create_post_returns_the_post_and_its_location(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    response = await client.post(f"{API}/posts", json={"content": "  Hello, world  "}, headers=ada.headers)
    assert response.status_code == 201, response.text
    post = response.json()
    assert set(post) == POST_FIELDS
    assert post["content"] == "Hello, world"
    assert post["visibility"] == "friends"
    assert post["author"] == {"id": ada.id, "username": "ada", "display_name": "Ada", "avatar_url": None}
    assert post["media"] == []
    assert (post["like_count"], post["comment_count"], post["liked_by_me"]) == (0, 0, False)
    assert post["created_at"].endswith("Z")
    assert post["edited_at"] is None
    assert response.headers["location"] == f"https://kith.example{API}/posts/{post['id']}"
    assert await get_post(client, ada, post["id"]) == post


async def test_create_post_with_media_keeps_their_order(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    first, second = await upload(resources, ada), await upload(resources, ada)
    post = await create_post(client, ada, content="", media_ids=[second, first], visibility="public")
    assert [media["id"] for media in post["media"]] == [second, first]
    image = post["media"][0]
    assert set(image) == {"id", "url", "content_type", "width", "height", "size"}
    assert image["url"].startswith(f"https://kith.example{MEDIA}/")
    assert (await get_post(client, ada, post["id"]))["media"] == post["media"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body.content"),
        ({"content": "   "}, "body.content"),
        ({"content": "x" * 5001}, "body.content"),
        ({"content": "a\x00b"}, "body.content"),
        ({"content": "hi", "visibility": "everyone"}, "body.visibility"),
        ({"content": "hi", "media_ids": ["a", "b", "c", "d", "e"]}, "body.media_ids"),
        ({"content": "hi", "like_count": 5}, "body.like_count"),
        ({"content": "hi", "author_id": "someone"}, "body.author_id"),
    ],
)
async def test_create_post_rejects_invalid_bodies(
    client: httpx.AsyncClient, resources: Resources, body: dict[str, Any], field: str
) -> None:
    ada = await member(resources, "ada")
    response = await client.post(f"{API}/posts", json=body, headers=ada.headers)
    assert_problem(response, 422)
    assert field in field_errors(response)


async def test_content_limit_counts_characters_after_trimming(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    post = await create_post(client, ada, content="  " + "é" * 5000 + "\n")
    assert len(post["content"]) == 5000


async def test_media_must_be_own_unattached_uploads(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob = await member(resources, "ada"), await member(resources, "bob")
    bobs = await upload(resources, bob)
    response = await client.post(f"{API}/posts", json={"media_ids": [bobs]}, headers=ada.headers)
    assert "body.media_ids" in field_errors(response)
    mine = await upload(resources, ada)
    await create_post(client, ada, media_ids=[mine])
    response = await client.post(f"{API}/posts", json={"media_ids": [mine]}, headers=ada.headers)
    assert_problem(response, 400, "media_not_available")
    assert "body.media_ids" in field_errors(response)
    # The failed request created no post.
    assert len(await walk(client, ada, f"/users/{ada.id}/posts", 10)) == 1


async def test_posts_need_authentication(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    post = await create_post(client, ada, visibility="public")
    assert_problem(await client.post(f"{API}/posts", json={"content": "hi"}), 401)
    assert_problem(await client.get(f"{API}/posts/{post['id']}"), 401)
    assert_problem(await client.get(f"{API}/users/{ada.id}/posts"), 401)


# --- who reads what -------------------------------------------------------------------


async def test_visibility_for_author_friend_stranger_moderator_and_admin(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author = await member(resources, "author")
    viewers = {
        "author": author,
        "friend": await member(resources, "friend"),
        "stranger": await member(resources, "stranger"),
        "moderator": await member(resources, "moder", Role.moderator),
        "admin": await member(resources, "root", Role.admin),
    }
    await befriend(resources, author, viewers["friend"])
    posts = {
        v: (await create_post(client, author, visibility=v))["id"] for v in ("public", "friends", "private")
    }
    expected = {
        ("public", "author"): True,
        ("public", "friend"): True,
        ("public", "stranger"): True,
        ("public", "moderator"): True,
        ("public", "admin"): True,
        ("friends", "author"): True,
        ("friends", "friend"): True,
        ("friends", "stranger"): False,
        ("friends", "moderator"): True,
        ("friends", "admin"): True,
        ("private", "author"): True,
        ("private", "friend"): False,
        ("private", "stranger"): False,
        ("private", "moderator"): True,
        ("private", "admin"): True,
    }
    seen_single: dict[tuple[str, str], bool] = {}
    seen_listed: dict[tuple[str, str], bool] = {}
    for name, viewer in viewers.items():
        listed = {item["id"] for item in await walk(client, viewer, f"/users/{author.id}/posts", 2)}
        for visibility, post_id in posts.items():
            response = await client.get(f"{API}/posts/{post_id}", headers=viewer.headers)
            if response.status_code == 404:
                assert_problem(response, 404, "post_not_found")
            seen_single[visibility, name] = response.status_code == 200
            seen_listed[visibility, name] = post_id in listed
    assert seen_single == expected
    assert seen_listed == expected


async def test_hidden_posts_cannot_be_liked_commented_or_listed(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    author, stranger = await member(resources, "author"), await member(resources, "stranger")
    post_id = (await create_post(client, author, visibility="friends"))["id"]
    attempts = [
        client.post(f"{API}/posts/{post_id}/like", headers=stranger.headers),
        client.delete(f"{API}/posts/{post_id}/like", headers=stranger.headers),
        client.get(f"{API}/posts/{post_id}/likes", headers=stranger.headers),
        client.post(f"{API}/posts/{post_id}/comments", json={"content": "hi"}, headers=stranger.headers),
        client.get(f"{API}/posts/{post_id}/comments", headers=stranger.headers),
        client.patch(f"{API}/posts/{post_id}", json={"content": "mine now"}, headers=stranger.headers),
        client.delete(f"{API}/posts/{post_id}", headers=stranger.headers),
    ]
    for attempt in attempts:
        assert_problem(await attempt, 404, "post_not_found")
    assert (await get_post(client, author, post_id))["like_count"] == 0


async def test_blocks_hide_posts_and_profile_both_ways(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cy = (
        await member(resources, "ada"),
        await member(resources, "bob"),
        await member(resources, "cy"),
    )
    await befriend(resources, ada, bob)
    ada_post = (await create_post(client, ada, visibility="public"))["id"]
    bob_post = (await create_post(client, bob, visibility="public"))["id"]
    await block(resources, ada, bob)
    assert_problem(await client.get(f"{API}/posts/{ada_post}", headers=bob.headers), 404, "post_not_found")
    assert_problem(await client.get(f"{API}/posts/{bob_post}", headers=ada.headers), 404, "post_not_found")
    for viewer, other in ((bob, ada), (ada, bob)):
        response = await client.get(f"{API}/users/{other.id}/posts", headers=viewer.headers)
        assert_problem(response, 404, "user_not_found")
    # Everyone else still sees both.
    assert (await get_post(client, cy, ada_post))["id"] == ada_post
    assert (await get_post(client, cy, bob_post))["id"] == bob_post


async def test_suspended_authors_posts_are_hidden_from_users_not_from_staff(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await member(resources, "ada"), await member(resources, "bob")
    moderator = await member(resources, "moder", Role.moderator)
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    await set_suspended(resources, ada)
    assert_problem(await client.get(f"{API}/posts/{post_id}", headers=bob.headers), 404)
    assert_problem(
        await client.get(f"{API}/users/{ada.id}/posts", headers=bob.headers), 404, "user_not_found"
    )
    assert (await get_post(client, moderator, post_id))["id"] == post_id
    assert [item["id"] for item in await walk(client, moderator, f"/users/{ada.id}/posts", 5)] == [post_id]


async def test_unknown_post_and_user_are_404(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    assert_problem(await client.get(f"{API}/posts/nope", headers=ada.headers), 404, "post_not_found")
    missing = "0190c0de-0000-7000-8000-000000000000"
    assert_problem(
        await client.get(f"{API}/users/{missing}/posts", headers=ada.headers), 404, "user_not_found"
    )


# --- listing --------------------------------------------------------------------------


async def test_user_posts_newest_first_and_stable_under_inserts(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await member(resources, "ada"), await member(resources, "bob")
    created = [
        (await create_post(client, ada, content=f"post {n}", visibility="public"))["id"] for n in range(7)
    ]
    assert [item["id"] for item in await walk(client, bob, f"/users/{ada.id}/posts", 3)] == created[::-1]

    first = await client.get(f"{API}/users/{ada.id}/posts", params={"limit": 3}, headers=bob.headers)
    body = first.json()
    assert [item["id"] for item in body["items"]] == created[:3:-1]
    await create_post(client, ada, content="newer", visibility="public")
    second = await client.get(
        f"{API}/users/{ada.id}/posts", params={"limit": 3, "cursor": body["next_cursor"]}, headers=bob.headers
    )
    assert [item["id"] for item in second.json()["items"]] == created[3:0:-1]


async def test_user_posts_limit_is_bounded(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    response = await client.get(f"{API}/users/{ada.id}/posts", params={"limit": 101}, headers=ada.headers)
    assert_problem(response, 422)
    response = await client.get(
        f"{API}/users/{ada.id}/posts", params={"cursor": "garbage"}, headers=ada.headers
    )
    assert_problem(response, 422, "invalid_cursor")


async def test_listing_shows_likes_and_media_of_each_post(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await member(resources, "ada"), await member(resources, "bob")
    image = await upload(resources, ada)
    with_image = await create_post(client, ada, media_ids=[image], visibility="public")
    plain = await create_post(client, ada, visibility="public")
    assert (await client.post(f"{API}/posts/{plain['id']}/like", headers=bob.headers)).status_code == 201
    items = await walk(client, bob, f"/users/{ada.id}/posts", 10)
    assert [(item["id"], item["liked_by_me"], item["like_count"]) for item in items] == [
        (plain["id"], True, 1),
        (with_image["id"], False, 0),
    ]
    assert [media["id"] for media in items[1]["media"]] == [image]
    assert items[0]["media"] == []


async def test_listing_a_page_takes_the_same_number_of_queries_at_any_size(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await member(resources, "ada"), await member(resources, "bob")
    await befriend(resources, ada, bob)
    for n in range(50):
        media_ids = [await upload(resources, ada)] if n % 3 == 0 else []
        post = await create_post(client, ada, content=f"post {n}", media_ids=media_ids)
        if n % 2 == 0:
            await client.post(f"{API}/posts/{post['id']}/like", headers=bob.headers)

    statements: list[str] = []

    def count(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    async def statements_for(limit: int) -> int:
        statements.clear()
        response = await client.get(
            f"{API}/users/{ada.id}/posts", params={"limit": limit}, headers=bob.headers
        )
        assert response.status_code == 200
        assert len(response.json()["items"]) == limit
        return len(statements)

    engine = resources.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        small, large = await statements_for(5), await statements_for(50)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert small == large
    assert large <= 10, statements


# --- editing --------------------------------------------------------------------------


async def test_author_edits_content_and_visibility(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob = await member(resources, "ada"), await member(resources, "bob")
    post = await create_post(client, ada, content="draft", visibility="private")
    assert_problem(await client.get(f"{API}/posts/{post['id']}", headers=bob.headers), 404)

    resources.clock.advance(minutes=5)
    response = await client.patch(
        f"{API}/posts/{post['id']}", json={"content": " final ", "visibility": "public"}, headers=ada.headers
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert (edited["content"], edited["visibility"]) == ("final", "public")
    assert edited["edited_at"] is not None and edited["edited_at"] > edited["created_at"]
    assert edited["created_at"] == post["created_at"]
    assert await get_post(client, bob, post["id"]) == edited

    response = await client.patch(
        f"{API}/posts/{post['id']}", json={"visibility": "friends"}, headers=ada.headers
    )
    assert response.json()["content"] == "final"
    assert response.json()["visibility"] == "friends"


async def test_only_the_author_may_edit(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, friend = await member(resources, "ada"), await member(resources, "friend")
    moderator = await member(resources, "moder", Role.moderator)
    admin = await member(resources, "root", Role.admin)
    await befriend(resources, ada, friend)
    post = await create_post(client, ada, visibility="public")
    for other in (friend, moderator, admin):
        response = await client.patch(
            f"{API}/posts/{post['id']}", json={"content": "x"}, headers=other.headers
        )
        assert_problem(response, 404, "post_not_found")
    assert (await get_post(client, ada, post["id"]))["content"] == "hello"


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "body"), ({"content": "x" * 5001}, "body.content"), ({"id": "new"}, "body.id")],
)
async def test_edit_rejects_invalid_bodies(
    client: httpx.AsyncClient, resources: Resources, body: dict[str, Any], field: str
) -> None:
    ada = await member(resources, "ada")
    post = await create_post(client, ada)
    response = await client.patch(f"{API}/posts/{post['id']}", json=body, headers=ada.headers)
    assert_problem(response, 422)
    assert field in field_errors(response)


async def test_edit_may_empty_the_text_only_of_posts_with_images(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    plain = await create_post(client, ada)
    response = await client.patch(f"{API}/posts/{plain['id']}", json={"content": ""}, headers=ada.headers)
    assert_problem(response, 400, "post_needs_content")
    assert "body.content" in field_errors(response)
    illustrated = await create_post(client, ada, media_ids=[await upload(resources, ada)])
    response = await client.patch(
        f"{API}/posts/{illustrated['id']}", json={"content": ""}, headers=ada.headers
    )
    assert response.status_code == 200
    assert response.json()["content"] == ""


# --- deleting -------------------------------------------------------------------------


async def test_author_deletes_post_with_its_likes_comments_and_media(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await member(resources, "ada"), await member(resources, "bob")
    admin = await member(resources, "root", Role.admin)
    image = await upload(resources, ada)
    post = await create_post(client, ada, visibility="public", media_ids=[image])
    await client.post(f"{API}/posts/{post['id']}/like", headers=bob.headers)
    await comment(client, bob, post["id"])

    response = await client.delete(f"{API}/posts/{post['id']}", headers=ada.headers)
    assert response.status_code == 204
    assert_problem(await client.get(f"{API}/posts/{post['id']}", headers=ada.headers), 404)
    assert_problem(await client.delete(f"{API}/posts/{post['id']}", headers=ada.headers), 404)
    async with unit_of_work(resources, write=False) as session:
        assert await session.get(Post, post["id"]) is None
        assert await session.scalar(select(func.count()).select_from(Like)) == 0
        assert await session.scalar(select(func.count()).select_from(Comment)) == 0
        # Deleted with the post, and its file with the commit (docs/security.md).
        assert await session.get(Media, image) is None
    assert await audit_entries(client, admin, "post.removed") == []


async def test_others_cannot_delete_a_post_they_can_read(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, friend = await member(resources, "ada"), await member(resources, "friend")
    await befriend(resources, ada, friend)
    post = await create_post(client, ada)
    assert_problem(
        await client.delete(f"{API}/posts/{post['id']}", headers=friend.headers), 404, "post_not_found"
    )
    assert (await get_post(client, friend, post["id"]))["id"] == post["id"]


@pytest.mark.parametrize("role", [Role.moderator, Role.admin])
async def test_staff_delete_any_post_and_it_is_audited(
    client: httpx.AsyncClient, resources: Resources, role: Role
) -> None:
    ada = await member(resources, "ada")
    staff_member = await member(resources, "staffer", role)
    admin = staff_member if role == Role.admin else await member(resources, "root", Role.admin)
    post = await create_post(client, ada, visibility="private")
    response = await client.delete(f"{API}/posts/{post['id']}", headers=staff_member.headers)
    assert response.status_code == 204
    assert_problem(await client.get(f"{API}/posts/{post['id']}", headers=ada.headers), 404)
    [entry] = await audit_entries(client, admin, "post.removed")
    assert (entry["actor_id"], entry["target_type"], entry["target_id"]) == (
        staff_member.id,
        "post",
        post["id"],
    )
    assert entry["details"]["author_id"] == ada.id
