"""Who may do what to a post: an authorization matrix, as data, run through the API.

Rows are (operation, actor, visibility) → expected status. Actors: the post's author, a
friend, a stranger, a user the author blocked, a moderator, an admin, and a friend's
read-only and read-write API keys. Hidden things are 404. After every refused request
the post, its likes and its comments are checked unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from kith.db.models import Role
from kith.runtime.resources import Resources
from tests.helpers import API
from tests.posting import befriend, block, counted_rows, member

ACTORS = ("author", "friend", "stranger", "blocked", "moderator", "admin", "read_key", "write_key")
VISIBILITIES = ("public", "friends", "private")
STAFF = {"moderator", "admin"}


def sees(actor: str, visibility: str) -> bool:
    """The visibility rule of docs/api.md, written out once more, independently of the code."""
    if actor == "author" or actor in STAFF:
        return True
    if actor == "blocked":
        return False
    if actor in ("friend", "read_key", "write_key"):
        return visibility in ("public", "friends")
    return visibility == "public"


def expected(operation: str, actor: str, visibility: str) -> int:
    visible = sees(actor, visibility)
    writes = operation not in ("read", "likes", "comments", "author_posts", "profile")
    if writes and actor == "read_key":
        return 403  # the key's scope is checked before anything is looked up
    if operation == "profile":
        return 404 if actor == "blocked" else 200
    if operation == "author_posts":
        return 404 if actor == "blocked" else 200
    if operation in ("read", "likes", "comments"):
        return 200 if visible else 404
    if operation == "like":
        return 201 if visible else 404
    if operation == "unlike":
        return 204 if visible else 404
    if operation == "comment":
        return 201 if visible else 404
    if operation == "edit":
        return 200 if actor == "author" else 404
    if operation == "delete":
        return 204 if actor == "author" or actor in STAFF else 404
    raise AssertionError(operation)


@dataclass
class Operation:
    name: str
    method: str
    path: str
    body: dict[str, Any] | None = None


OPERATIONS = [
    Operation("read", "GET", "/posts/{post}"),
    Operation("likes", "GET", "/posts/{post}/likes"),
    Operation("comments", "GET", "/posts/{post}/comments"),
    Operation("author_posts", "GET", "/users/{author}/posts"),
    Operation("profile", "GET", "/users/{author}"),
    Operation("like", "POST", "/posts/{post}/like"),
    Operation("unlike", "DELETE", "/posts/{post}/like"),
    Operation("comment", "POST", "/posts/{post}/comments", {"content": "hello"}),
    Operation("edit", "PATCH", "/posts/{post}", {"content": "changed"}),
    Operation("delete", "DELETE", "/posts/{post}"),  # last: it removes the post
]

MATRIX = [(actor, visibility) for actor in ACTORS for visibility in VISIBILITIES]


async def api_key(client: httpx.AsyncClient, headers: dict[str, str], scopes: list[str]) -> dict[str, str]:
    response = await client.post(
        f"{API}/users/me/api-keys", json={"name": "matrix", "scopes": scopes}, headers=headers
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


async def post_state(client: httpx.AsyncClient, author_headers: dict[str, str], post_id: str) -> Any:
    response = await client.get(f"{API}/posts/{post_id}", headers=author_headers)
    if response.status_code == 404:
        return None
    body = response.json()
    return {key: body[key] for key in ("content", "visibility", "like_count", "comment_count", "edited_at")}


@pytest.mark.parametrize(("actor", "visibility"), MATRIX, ids=[f"{a}-{v}" for a, v in MATRIX])
async def test_post_authorization_matrix(
    client: httpx.AsyncClient, resources: Resources, actor: str, visibility: str
) -> None:
    author = await member(resources, "author")
    friend = await member(resources, "friend")
    stranger = await member(resources, "stranger")
    blocked = await member(resources, "blocked")
    moderator = await member(resources, "moderator", Role.moderator)
    admin = await member(resources, "admin", Role.admin)
    await befriend(resources, author, friend)
    await block(resources, author, blocked)
    headers = {
        "author": author.headers,
        "friend": friend.headers,
        "stranger": stranger.headers,
        "blocked": blocked.headers,
        "moderator": moderator.headers,
        "admin": admin.headers,
        "read_key": await api_key(client, friend.headers, ["read"]),
        "write_key": await api_key(client, friend.headers, ["read", "write"]),
    }[actor]
    created = await client.post(
        f"{API}/posts", json={"content": "original", "visibility": visibility}, headers=author.headers
    )
    post_id = created.json()["id"]

    for operation in OPERATIONS:
        path = API + operation.path.format(post=post_id, author=author.id)
        before = await post_state(client, author.headers, post_id)
        rows_before = await counted_rows(resources, post_id)
        response = await client.request(operation.method, path, json=operation.body, headers=headers)
        want = expected(operation.name, actor, visibility)
        assert response.status_code == want, (operation.name, actor, visibility, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"
            # Nothing changed after a refused request.
            assert await post_state(client, author.headers, post_id) == before, operation.name
            assert await counted_rows(resources, post_id) == rows_before, operation.name
        if operation.name == "author_posts" and response.status_code == 200:
            listed = {item["id"] for item in response.json()["items"]}
            assert (post_id in listed) == sees(actor, visibility)
