"""What a blocked user can learn about the user who blocked them: nothing (docs/security.md).

Every endpoint that names a user, post, comment, friend request, upload, report, API key or
notification is asked, by the blocked user, about the blocker's things and about ids nobody
has; the two answers must be the same, byte for byte (status, headers, body), once request ids
and ids are set aside. Then no list the blocked user can read, about themselves or about a
friend they share with the blocker, may show a trace of the blocker (nor, the other way
round, the blocker's lists of the blocked user).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from kith.core.ids import new_id
from kith.runtime.resources import Resources
from tests import posting
from tests.helpers import API, MEDIA, Account

# Headers that differ between any two requests, whatever they ask.
VOLATILE_HEADERS = {"x-request-id", "date", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"}


@dataclass(frozen=True)
class Ask:
    """One request about somebody's thing: `route` as the OpenAPI names it, with its path
    parameters and `"{name}"` strings in `body` filled from the things asked about."""

    method: str
    route: str
    path: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


# Everything the blocked user (Bob) can ask about the blocker (Ada) or her things.
ASKS = (
    Ask("GET", "/users/{user_id}", {"user_id": "user"}),
    Ask("GET", "/users/{user_id}/posts", {"user_id": "user"}),
    Ask("GET", "/users/{user_id}/friends", {"user_id": "user"}),
    Ask("GET", "/users", body={"q": "{username}"}),
    Ask("POST", "/friend-requests", body={"receiver_id": "{user}"}),
    Ask("DELETE", "/friends/{user_id}", {"user_id": "user"}),
    Ask("POST", "/blocks", body={"user_id": "{user}"}),
    Ask("DELETE", "/blocks/{user_id}", {"user_id": "user"}),
    # A request Ada sent and Bob accepted, and one Bob sent and Ada rejected.
    *(
        ask
        for request in ("accepted_request", "rejected_request")
        for ask in (
            Ask("GET", "/friend-requests/{request_id}", {"request_id": request}),
            Ask("PATCH", "/friend-requests/{request_id}", {"request_id": request}, {"action": "accept"}),
            Ask("PATCH", "/friend-requests/{request_id}", {"request_id": request}, {"action": "reject"}),
            Ask("DELETE", "/friend-requests/{request_id}", {"request_id": request}),
        )
    ),
    *(
        ask
        for post in ("public_post", "friends_post")
        for ask in (
            Ask("GET", "/posts/{post_id}", {"post_id": post}),
            Ask("PATCH", "/posts/{post_id}", {"post_id": post}, {"content": "changed"}),
            Ask("POST", "/posts/{post_id}/like", {"post_id": post}),
            Ask("DELETE", "/posts/{post_id}/like", {"post_id": post}),
            Ask("GET", "/posts/{post_id}/likes", {"post_id": post}),
            Ask("POST", "/posts/{post_id}/comments", {"post_id": post}, {"content": "hello"}),
            Ask("GET", "/posts/{post_id}/comments", {"post_id": post}),
            Ask("DELETE", "/posts/{post_id}", {"post_id": post}),
        )
    ),
    # Ada's comments on a friend's post and on Bob's own post, and Bob's comment on hers.
    *(
        ask
        for comment in ("comment_on_friends_post", "comment_on_bobs_post", "bobs_comment")
        for ask in (
            Ask("PATCH", "/comments/{comment_id}", {"comment_id": comment}, {"content": "changed"}),
            Ask("DELETE", "/comments/{comment_id}", {"comment_id": comment}),
        )
    ),
    *(
        Ask("POST", "/reports", body={"target_type": kind, "target_id": "{" + thing + "}", "reason": "spam"})
        for kind, thing in (
            ("user", "user"),
            ("post", "public_post"),
            ("comment", "comment_on_friends_post"),
        )
    ),
    # Ada's upload, not attached to anything: only its owner may use it.
    Ask("PATCH", "/users/me", body={"avatar_media_id": "{upload}"}),
    Ask("POST", "/posts", body={"content": "mine", "media_ids": ["{upload}"]}),
    Ask("DELETE", "/users/me/api-keys/{key_id}", {"key_id": "api_key"}),
    Ask("DELETE", "/users/me/sessions/{session_id}", {"session_id": "login_session"}),
    # Ada's data export: hers alone, whoever asks.
    Ask("GET", "/users/me/exports/{export_id}", {"export_id": "export"}),
    Ask("GET", "/users/me/exports/{export_id}/archive", {"export_id": "export"}),
    Ask("POST", "/users/me/exports/{export_id}/links", {"export_id": "export"}),
    # A notification about Ada's like, hidden from Bob while the block lasts.
    Ask("POST", "/notifications/read", body={"ids": ["{notification}"]}),
    Ask("PATCH", "/moderation/reports/{report_id}", {"report_id": "report"}, {"action": "dismiss"}),
    Ask("PATCH", "/admin/users/{user_id}", {"user_id": "user"}, {"suspended": True}),
    Ask("DELETE", "/admin/users/{user_id}", {"user_id": "user"}),
)

# Routes that name nobody else: the caller's own lists (read below, for traces of the other
# user), credentials, uploads and operations.
NOT_ABOUT_ANYONE = {
    ("GET", "/feed"),
    ("GET", "/blocks"),
    ("GET", "/friend-requests"),
    ("GET", "/notifications"),
    ("GET", "/notifications/unread-count"),
    ("GET", "/users/me"),
    ("DELETE", "/users/me"),
    ("POST", "/users/me/password"),
    ("GET", "/users/me/api-keys"),
    ("POST", "/users/me/api-keys"),
    ("GET", "/users/me/sessions"),
    ("GET", "/users/me/exports"),
    ("POST", "/users/me/exports"),
    ("GET", "/users/me/authorizations"),
    ("DELETE", "/users/me/authorizations/{authorization_id}"),
    ("POST", "/media"),
    ("GET", "/moderation/reports"),
    ("GET", "/admin/users"),
    ("GET", "/admin/audit-log"),
    *(
        ("POST", f"/auth/{name}")
        for name in (
            *("register", "login", "token", "refresh", "logout", "logout-all"),
            *("verify-email", "verify-email/resend", "password-reset", "password-reset/confirm"),
            *("web/login", "web/refresh", "web/logout"),
        )
    ),
}
# docs/api.md#posts-media-likes-comments: a media file is served to anyone holding its URL,
# signed in or not, so who asks cannot matter (the blocked user keeps a URL they already had).
# So is an export's download link (docs/export.md): its token is the credential, which only
# the export's owner can ask for.
BY_URL_FOR_ANYONE = {("GET", f"{MEDIA}/{{key}}"), ("GET", "/export-downloads/{token}")}


def fill(value: Any, things: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for name, thing in things.items():
            value = value.replace("{" + name + "}", thing)
        return value
    if isinstance(value, list):
        return [fill(item, things) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, things) for key, item in value.items()}
    return value


async def ask(
    client: httpx.AsyncClient, viewer: Account, request: Ask, things: Mapping[str, str], **headers: str
) -> httpx.Response:
    path = request.route
    for parameter, thing in request.path.items():
        path = path.replace("{" + parameter + "}", things[thing])
    all_headers = {**viewer.headers, **headers}
    if request.method == "GET":
        params = fill(request.body, things) if request.body else None
        return await client.get(f"{API}{path}", params=params, headers=all_headers)
    body = fill(request.body, things)
    return await client.request(
        request.method, f"{API}{path}", json=body if body is not None else None, headers=all_headers
    )


def comparable(response: httpx.Response, things: Mapping[str, str]) -> tuple[int, dict[str, str], Any]:
    """Status, headers and body, without what differs between any two requests (request ids,
    dates, rate-limit counters) and with the ids asked about replaced by their names."""

    def anonymous(text: str) -> str:
        for name, thing in things.items():
            text = text.replace(thing, f"<{name}>")
        return text

    headers = {
        name: anonymous(value) for name, value in response.headers.items() if name not in VOLATILE_HEADERS
    }
    body: Any = response.text
    if response.headers.get("content-type", "").endswith("json") and response.content:
        body = json.loads(anonymous(response.text))
        if isinstance(body, dict):
            body.pop("request_id", None)
    return response.status_code, headers, body


async def comparison(
    client: httpx.AsyncClient,
    viewer: Account,
    about: Mapping[str, str],
    nobody: Mapping[str, str],
    etags: Mapping[int, str],
    unasked: frozenset[tuple[str, str]] = frozenset(),
) -> list[str]:
    """Each request whose answer about the blocker's things differs from its answer about ids
    nobody has, with both answers. GETs send the tag the viewer held before the block, as a
    cache would."""
    differences = []
    for number, request in enumerate(ASKS):
        if (request.method, request.route) in unasked:
            continue
        headers = {"If-None-Match": etags[number]} if number in etags else {}
        answers = [
            comparable(await ask(client, viewer, request, things, **headers), things)
            for things in (about, nobody)
        ]
        if answers[0] != answers[1]:
            label = f"{request.method} {request.route} {dict(request.path)} {request.body}"
            differences.append(f"{label}: {answers[0]} != {answers[1]}")
    return differences


def traces(response: httpx.Response, marks: tuple[str, ...]) -> list[str]:
    assert response.status_code == 200, response.text
    text = response.text.lower()
    return [mark for mark in marks if mark.lower() in text]


async def lists_with_traces(
    client: httpx.AsyncClient, viewer: Account, paths: list[str], marks: tuple[str, ...]
) -> dict[str, list[str]]:
    found = {}
    for path in paths:
        url = httpx.URL(f"{API}{path}").copy_merge_params({"limit": 100})
        seen = traces(await client.get(url, headers=viewer.headers), marks)
        if seen:
            found[path] = seen
    return found


async def call(
    client: httpx.AsyncClient, account: Account, method: str, path: str, body: Any = None, status: int = 201
) -> Any:
    response = await client.request(method, f"{API}{path}", json=body, headers=account.headers)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def test_a_blocked_user_learns_nothing_of_the_blocker_from_any_endpoint_or_list(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    # Every route the application serves is asked about the blocker, or names nobody.
    routes = {
        (method.upper(), path.removeprefix(API))
        for path, operations in app.openapi()["paths"].items()
        if path.startswith((API, MEDIA))
        for method in operations
    }
    asked = {(request.method, request.route) for request in ASKS}
    assert routes == asked | NOT_ABOUT_ANYONE | BY_URL_FOR_ANYONE

    ada, bob, cyd = await posting.members(resources, "blocker_ada", "blocked_bob", "shared_cyd")
    # Their history before the block: a request of his that she rejected, then one of hers
    # that he accepted...
    rejected = await call(client, bob, "POST", "/friend-requests", {"receiver_id": ada.id})
    await call(client, ada, "PATCH", f"/friend-requests/{rejected['id']}", {"action": "reject"}, 200)
    accepted = await call(client, ada, "POST", "/friend-requests", {"receiver_id": bob.id})
    await call(client, bob, "PATCH", f"/friend-requests/{accepted['id']}", {"action": "accept"}, 200)
    # ...with a friend in common, and posts, likes and comments on each other's and on his.
    await posting.befriend(resources, ada, cyd)
    await posting.befriend(resources, bob, cyd)
    public_post = await posting.create_post(client, ada, content="blocker_ada writes", visibility="public")
    friends_post = await posting.create_post(client, ada, content="blocker_ada to friends")
    bobs_post = await posting.create_post(client, bob, content="blocked_bob writes", visibility="public")
    cyds_post = await posting.create_post(client, cyd, content="shared_cyd writes", visibility="public")
    for account, post in ((bob, public_post), (ada, bobs_post), (ada, cyds_post), (bob, cyds_post)):
        await call(client, account, "POST", f"/posts/{post['id']}/like")
    bobs_comment = await posting.comment(client, bob, public_post["id"], "blocked_bob says")
    comment_on_bobs_post = await posting.comment(client, ada, bobs_post["id"], "blocker_ada says")
    comment_on_friends_post = await posting.comment(client, ada, cyds_post["id"], "blocker_ada says")
    await posting.comment(client, bob, cyds_post["id"], "blocked_bob says")
    await posting.comment(client, cyd, cyds_post["id"], "shared_cyd says")
    api_key = await call(client, ada, "POST", "/users/me/api-keys", {"name": "script", "scopes": ["read"]})
    report = await call(
        client, ada, "POST", "/reports", {"target_type": "post", "target_id": cyds_post["id"], "reason": "x"}
    )
    notifications = await call(client, bob, "GET", "/notifications", status=200)
    export = await call(client, ada, "POST", "/users/me/exports", status=202)
    await resources.jobs.wait_idle()
    about_ada = {
        "user": ada.id,
        "username": ada.username,
        "accepted_request": accepted["id"],
        "rejected_request": rejected["id"],
        "public_post": public_post["id"],
        "friends_post": friends_post["id"],
        "comment_on_friends_post": comment_on_friends_post["id"],
        "comment_on_bobs_post": comment_on_bobs_post["id"],
        "bobs_comment": bobs_comment["id"],
        "upload": await posting.upload(resources, ada),
        "api_key": api_key["id"],
        "login_session": (await call(client, ada, "GET", "/users/me/sessions", status=200))["items"][0]["id"],
        "report": report["id"],
        "export": export["id"],
        "notification": next(item["id"] for item in notifications["items"] if item["actor"]["id"] == ada.id),
    }
    # Ids nobody has, of the same shape (a name of the same length for the username).
    nobody = {name: new_id() for name in about_ada} | {"username": "nobody_at_all"[: len(ada.username)]}
    assert len(nobody["username"]) == len(ada.username)
    # What Bob's cache holds from before the block.
    etags = {}
    for number, request in enumerate(ASKS):
        if request.method == "GET":
            response = await ask(client, bob, request, about_ada)
            if "etag" in response.headers:
                etags[number] = response.headers["etag"]

    # Bob's comment is on Ada's post; everything else in `about_ada` is hers.
    ada_marks = tuple(mark for name, mark in about_ada.items() if name != "bobs_comment")
    bob_marks = (bob.id, bob.username, bobs_post["id"], bobs_comment["id"])
    bobs_lists = [
        "/users",
        f"/users?q={ada.username}",
        "/users/me",
        f"/users/{bob.id}",
        f"/users/{bob.id}/friends",
        f"/users/{bob.id}/posts",
        f"/users/{cyd.id}",
        f"/users/{cyd.id}/friends",
        f"/users/{cyd.id}/posts",
        f"/posts/{cyds_post['id']}",
        f"/posts/{cyds_post['id']}/likes",
        f"/posts/{cyds_post['id']}/comments",
        f"/posts/{bobs_post['id']}",
        f"/posts/{bobs_post['id']}/likes",
        f"/posts/{bobs_post['id']}/comments",
        "/feed",
        "/notifications",
        "/notifications?unread_only=true",
        "/notifications/unread-count",
        "/blocks",
        "/users/me/exports",
        *(
            f"/friend-requests?direction={direction}&status={status}"
            for direction in ("incoming", "outgoing")
            for status in ("pending", "accepted", "rejected")
        ),
    ]
    # Ada's own lists are about Bob the same way (her list of blocks excepted, of course).
    adas_lists = [
        path.replace(bob.id, ada.id)
        .replace(bobs_post["id"], public_post["id"])
        .replace(ada.username, bob.username)
        for path in bobs_lists
        if path != "/blocks"
    ]
    # Before the block these lists show Ada (so looking for her finds her where she is).
    assert set(await lists_with_traces(client, bob, bobs_lists, ada_marks)) >= {
        f"/users?q={ada.username}",
        f"/users/{bob.id}/friends",
        f"/users/{cyd.id}/friends",
        f"/posts/{cyds_post['id']}/likes",
        f"/posts/{cyds_post['id']}/comments",
        f"/posts/{bobs_post['id']}/likes",
        f"/posts/{bobs_post['id']}/comments",
        "/notifications",
        "/friend-requests?direction=incoming&status=accepted",
        "/friend-requests?direction=outgoing&status=rejected",
    }

    await call(client, ada, "POST", "/blocks", {"user_id": bob.id})

    # Then the same once Bob blocks Ada as well (blocks made before blocking back was refused).
    # Each may still lift their own block, though their list leaves it out (else neither could
    # ever lift theirs), so there Bob's `DELETE /blocks/{ada}` answers 204 where an unknown id
    # is 404 `not_blocked`: the one answer that tells him his block of her was still there.
    for stage, unasked in (
        ("blocked", frozenset[tuple[str, str]]()),
        ("blocked both ways", frozenset({("DELETE", "/blocks/{user_id}")})),
    ):
        if unasked:
            await posting.block(resources, bob, ada)
        differences = await comparison(client, bob, about_ada, nobody, etags, unasked)
        assert not differences, "\n".join([stage, *differences])
        assert await lists_with_traces(client, bob, bobs_lists, ada_marks) == {}, stage
        assert await lists_with_traces(client, ada, adas_lists, bob_marks) == {}, stage
        # A count on a profile is the length of the list it counts.
        shared = await call(client, bob, "GET", f"/users/{cyd.id}", status=200)
        friends = await call(client, bob, "GET", f"/users/{cyd.id}/friends", status=200)
        assert shared["friend_count"] == len(friends["items"]) == 1
        unread = await call(client, bob, "GET", "/notifications?unread_only=true", status=200)
        assert (await call(client, bob, "GET", "/notifications/unread-count", status=200))["count"] == len(
            unread["items"]
        )
