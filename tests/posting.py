"""Helpers for the posts and moderation tests: fast accounts, relationships, posts, media.

Friendships and blocks are inserted directly (the friend-request API is tested on its
own); posts, likes and comments always go through the API.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
from sqlalchemy import func, select

from kith.auth import service as auth
from kith.db.models import Block, Comment, Friendship, Like, Media, Post, Role, User
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.helpers import API, PASSWORD, Account

_password_hash: str | None = None


async def member(resources: Resources, username: str, role: Role = Role.user) -> Account:
    """An account with a live session, made without an Argon2 hash per account.

    The password is `PASSWORD` (hashed once per test run), so password checks still work.
    """
    global _password_hash
    if _password_hash is None:
        _password_hash = await resources.passwords.hash(PASSWORD)
    async with unit_of_work(resources) as session:
        user = User(
            username=username,
            username_key=username.lower(),
            email=f"{username.lower()}@example.com",
            display_name=username.capitalize(),
            password_hash=_password_hash,
            role=role,
        )
        session.add(user)
        await session.flush()
        tokens = await auth.start_session(
            session, resources.tokens, resources.settings, user, None, now=resources.clock.now()
        )
    return Account(user.id, username, user.email, tokens.access_token, tokens.refresh_token)


async def members(resources: Resources, *usernames: str) -> list[Account]:
    return [await member(resources, username) for username in usernames]


async def befriend(resources: Resources, first: Account, second: Account) -> None:
    async with unit_of_work(resources) as session:
        session.add_all(
            [
                Friendship(user_id=first.id, friend_id=second.id),
                Friendship(user_id=second.id, friend_id=first.id),
            ]
        )


async def block(resources: Resources, blocker: Account, blocked: Account) -> None:
    async with unit_of_work(resources) as session:
        session.add(Block(blocker_id=blocker.id, blocked_id=blocked.id))


async def set_suspended(resources: Resources, account: Account, suspended: bool = True) -> None:
    async with unit_of_work(resources) as session:
        user = await session.get(User, account.id)
        assert user is not None
        user.suspended = suspended


async def upload(resources: Resources, owner: Account) -> str:
    """A stored upload of `owner`, as `POST /media` leaves it; returns its id."""
    async with unit_of_work(resources) as session:
        media = Media(
            owner_id=owner.id,
            storage_key=secrets.token_hex(16) + ".jpg",
            content_type="image/jpeg",
            width=640,
            height=480,
            size=12345,
        )
        session.add(media)
        await session.flush()
        return media.id


async def create_post(client: httpx.AsyncClient, author: Account, **body: Any) -> dict[str, Any]:
    body.setdefault("content", "hello")
    response = await client.post(f"{API}/posts", json=body, headers=author.headers)
    assert response.status_code == 201, response.text
    post: dict[str, Any] = response.json()
    return post


async def comment(
    client: httpx.AsyncClient, author: Account, post_id: str, content: str = "nice"
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/posts/{post_id}/comments", json={"content": content}, headers=author.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def get_post(client: httpx.AsyncClient, viewer: Account, post_id: str) -> dict[str, Any]:
    response = await client.get(f"{API}/posts/{post_id}", headers=viewer.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def walk(
    client: httpx.AsyncClient, viewer: Account, path: str, limit: int, **query: str
) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated list, following `next_cursor`."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit, **query}
    while True:
        response = await client.get(f"{API}{path}", params=params, headers=viewer.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= limit
        items.extend(body["items"])
        if body["next_cursor"] is None:
            assert "link" not in response.headers
            return items
        assert 'rel="next"' in response.headers["link"]
        params = {"limit": limit, **query, "cursor": body["next_cursor"]}


async def counted_rows(resources: Resources, post_id: str) -> tuple[int, int, int, int]:
    """(like_count, likes rows, comment_count, comment rows) of a post, straight from the database."""
    async with unit_of_work(resources, write=False) as session:
        post = await session.get(Post, post_id)
        assert post is not None
        likes = await session.scalar(select(func.count()).select_from(Like).where(Like.post_id == post_id))
        comments = await session.scalar(
            select(func.count()).select_from(Comment).where(Comment.post_id == post_id)
        )
        return post.like_count, int(likes or 0), post.comment_count, int(comments or 0)


async def audit_entries(client: httpx.AsyncClient, admin: Account, action: str) -> list[dict[str, Any]]:
    """The audit log entries (newest first) recording `action`, as an admin reads them."""
    response = await client.get(f"{API}/admin/audit-log", params={"limit": 100}, headers=admin.headers)
    assert response.status_code == 200, response.text
    return [entry for entry in response.json()["items"] if entry["action"] == action]
