"""OWASP API1:2023 Broken Object Level Authorization.

Posts, their likes and comments have their operation × actor × visibility matrix in
tests/integration/test_authorization_matrix.py. This module covers every other object
a client can name, by path or in a body: comments, friend requests, friendships, blocks,
API keys, users (blocked or suspended), reports, notifications, uploads and accounts
under /admin. `test_every_object_route_is_covered` fails when a route that takes an
object id is added without a row here or in the post matrix.

A refused request answers 404 when the object is hidden from the caller (403 only for
roles and scopes), and changes nothing: each refusal is followed by a look at the object.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from kith.db.models import Role
from kith.runtime.resources import Resources
from kith.web.router import PAGE_PATHS
from tests.helpers import API, MEDIA, Account, assert_problem
from tests.posting import befriend, block, comment, create_post, member, set_suspended, upload
from tests.security.inventory import served_routes

# Routes that name an object, and the test that covers them (the post matrix included).
POST_MATRIX = "tests/integration/test_authorization_matrix.py"
COVERED: dict[tuple[str, str], str] = {
    ("GET", f"{API}/posts/{{post_id}}"): POST_MATRIX,
    ("PATCH", f"{API}/posts/{{post_id}}"): POST_MATRIX,
    ("DELETE", f"{API}/posts/{{post_id}}"): POST_MATRIX,
    ("POST", f"{API}/posts/{{post_id}}/like"): POST_MATRIX,
    ("DELETE", f"{API}/posts/{{post_id}}/like"): POST_MATRIX,
    ("GET", f"{API}/posts/{{post_id}}/likes"): POST_MATRIX,
    ("POST", f"{API}/posts/{{post_id}}/comments"): POST_MATRIX,
    ("GET", f"{API}/posts/{{post_id}}/comments"): POST_MATRIX,
    ("PATCH", f"{API}/comments/{{comment_id}}"): "test_comments",
    ("DELETE", f"{API}/comments/{{comment_id}}"): "test_comments",
    ("GET", f"{API}/friend-requests/{{request_id}}"): "test_friend_requests",
    ("PATCH", f"{API}/friend-requests/{{request_id}}"): "test_friend_requests",
    ("DELETE", f"{API}/friend-requests/{{request_id}}"): "test_friend_requests",
    ("DELETE", f"{API}/friends/{{user_id}}"): "test_friendships_and_blocks_of_others",
    ("DELETE", f"{API}/blocks/{{user_id}}"): "test_friendships_and_blocks_of_others",
    ("DELETE", f"{API}/users/me/api-keys/{{key_id}}"): "test_api_keys_of_others",
    ("DELETE", f"{API}/users/me/sessions/{{session_id}}"): "test_sessions_of_others",
    ("GET", f"{API}/users/{{user_id}}"): "test_hidden_users",
    ("GET", f"{API}/users/{{user_id}}/posts"): "test_hidden_users",
    ("GET", f"{API}/users/{{user_id}}/friends"): "test_hidden_users",
    ("PATCH", f"{API}/moderation/reports/{{report_id}}"): "test_reports_and_accounts_are_for_staff",
    ("PATCH", f"{API}/admin/users/{{user_id}}"): "test_reports_and_accounts_are_for_staff",
    ("DELETE", f"{API}/admin/users/{{user_id}}"): "test_reports_and_accounts_are_for_staff",
    ("GET", f"{MEDIA}/{{key}}"): "test_uploads_of_others",
    ("GET", f"{API}/users/me/exports/{{export_id}}"): "test_exports_of_others",
    ("GET", f"{API}/users/me/exports/{{export_id}}/archive"): "test_exports_of_others",
    ("POST", f"{API}/users/me/exports/{{export_id}}/links"): "test_exports_of_others",
    ("GET", f"{API}/export-downloads/{{token}}"): "test_exports_of_others",
    ("DELETE", f"{API}/users/me/authorizations/{{authorization_id}}"): "test_mastodon_oauth.py: "
    "test_the_user_lists_and_revokes_the_apps_they_authorized",
    # The Mastodon-compatible accounts: hidden, suspended and blocking users are 404 there too.
    **dict.fromkeys(
        (
            ("GET", "/api/v1/accounts/{account_id}"),
            ("POST", "/api/v1/accounts/{account_id}/follow"),
            ("POST", "/api/v1/accounts/{account_id}/unfollow"),
            ("POST", "/api/v1/accounts/{account_id}/block"),
            ("POST", "/api/v1/accounts/{account_id}/unblock"),
            ("POST", "/api/v1/follow_requests/{account_id}/authorize"),
            ("POST", "/api/v1/follow_requests/{account_id}/reject"),
        ),
        "test_mastodon_accounts.py: test_blocking_ends_the_friendship_and_hides_both_ways, "
        "test_accounts_are_found_by_id_lookup_and_search",
    ),
    # The Mastodon-compatible statuses: a post or comment the caller may not read is 404.
    **dict.fromkeys(
        (
            ("GET", "/api/v1/statuses/{status_id}"),
            ("DELETE", "/api/v1/statuses/{status_id}"),
            ("GET", "/api/v1/statuses/{status_id}/context"),
            ("POST", "/api/v1/statuses/{status_id}/favourite"),
            ("POST", "/api/v1/statuses/{status_id}/unfavourite"),
            ("GET", "/api/v1/statuses/{status_id}/favourited_by"),
        ),
        "test_mastodon_statuses.py: test_a_status_the_caller_may_not_read_is_404_on_every_route",
    ),
    **dict.fromkeys(
        (
            ("GET", "/api/v1/notifications/{notification_id}"),
            ("POST", "/api/v1/notifications/{notification_id}/dismiss"),
        ),
        "test_mastodon_notifications.py: test_kiths_four_kinds_as_mastodons, "
        "test_dismiss_and_clear_delete_only_the_callers",
    ),
    # A stream names no object; the posts it carries are those the caller may read.
    ("GET", "/api/v1/streaming/{path}"): "test_mastodon_streaming.py: "
    "test_the_user_stream_carries_friends_posts_notifications_and_deletes, "
    "test_a_blocked_authors_public_post_is_not_streamed",
    **dict.fromkeys(
        (
            ("GET", "/api/v1/accounts/{account_id}/followers"),
            ("GET", "/api/v1/accounts/{account_id}/following"),
        ),
        "test_mastodon_accounts.py: test_followers_and_following_are_the_friends_the_caller_may_see",
    ),
    ("GET", "/api/v1/accounts/{account_id}/statuses"): "test_mastodon_timelines.py: "
    "test_public_timeline_and_an_accounts_statuses",
    ("GET", "/api/v1/media/{media_id}"): "test_mastodon_statuses.py: "
    "test_an_image_uploaded_the_mastodon_way_goes_into_a_status",
    # Objects named in a body.
    ("POST", f"{API}/friend-requests"): "test_objects_named_in_bodies",
    ("POST", f"{API}/blocks"): "test_objects_named_in_bodies",
    ("POST", f"{API}/reports"): "test_objects_named_in_bodies",
    ("POST", f"{API}/notifications/read"): "test_notifications_of_others",
    ("POST", f"{API}/posts"): "test_uploads_of_others",
    ("PATCH", f"{API}/users/me"): "test_uploads_of_others",
}
# Bodies whose fields name objects by id.
ID_FIELDS = {"receiver_id", "user_id", "target_id", "ids", "media_ids", "avatar_media_id"}


def test_every_object_route_is_covered(app: FastAPI) -> None:
    named_in_path = {(route.method, route.path) for route in served_routes(app) if "{" in route.path}
    named_in_path -= {("GET", "/problems/{code}"), ("GET", "/assets/{version}/{name}")}
    # The web client's page answers the same for every id; the view then asks the API.
    named_in_path -= {("GET", path) for path in PAGE_PATHS}
    schemas = app.openapi()["components"]["schemas"]
    named_in_body = set()
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content:
                schema = schemas[content["schema"]["$ref"].rsplit("/", 1)[1]]
                if ID_FIELDS & set(schema.get("properties", {})):
                    named_in_body.add((method.upper(), path))
    assert named_in_path | named_in_body == set(COVERED)


async def _key(client: httpx.AsyncClient, owner: Account, scopes: list[str]) -> dict[str, str]:
    response = await client.post(
        f"{API}/users/me/api-keys", json={"name": "k", "scopes": scopes}, headers=owner.headers
    )
    return {"X-API-Key": response.json()["key"]}


async def _refused(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert_problem(response, status, code)


# --- comments ------------------------------------------------------------------------------

COMMENT_ACTORS = ("commenter", "post_author", "stranger", "blocked", "moderator", "admin", "read_key")
EDIT = {"commenter": 200, "read_key": 403}
REMOVE = {"commenter": 204, "post_author": 204, "moderator": 204, "admin": 204, "read_key": 403}


@pytest.mark.parametrize("actor", COMMENT_ACTORS)
async def test_comments(client: httpx.AsyncClient, resources: Resources, actor: str) -> None:
    post_author, commenter = await member(resources, "poster"), await member(resources, "commenter")
    stranger, blocked = await member(resources, "stranger"), await member(resources, "blocked")
    await block(resources, post_author, blocked)
    headers = {
        "commenter": commenter.headers,
        "post_author": post_author.headers,
        "stranger": stranger.headers,
        "blocked": blocked.headers,
        "moderator": (await member(resources, "mod", Role.moderator)).headers,
        "admin": (await member(resources, "root", Role.admin)).headers,
        "read_key": await _key(client, commenter, ["read"]),
    }[actor]
    post = await create_post(client, post_author, content="hello", visibility="public")
    created = await comment(client, commenter, post["id"], "first")

    async def text() -> list[str]:
        listed = await client.get(f"{API}/posts/{post['id']}/comments", headers=post_author.headers)
        return [item["content"] for item in listed.json()["items"]]

    edited = await client.patch(
        f"{API}/comments/{created['id']}", json={"content": "changed"}, headers=headers
    )
    assert edited.status_code == EDIT.get(actor, 404), edited.text
    if edited.status_code >= 400:
        assert await text() == ["first"]
    removed = await client.delete(f"{API}/comments/{created['id']}", headers=headers)
    assert removed.status_code == REMOVE.get(actor, 404), removed.text
    if removed.status_code >= 400:
        assert len(await text()) == 1


# --- friend requests -----------------------------------------------------------------------

REQUEST_ACTORS = ("sender", "receiver", "stranger", "moderator", "admin", "sender_key", "receiver_key")


@pytest.mark.parametrize("actor", REQUEST_ACTORS)
async def test_friend_requests(client: httpx.AsyncClient, resources: Resources, actor: str) -> None:
    sender, receiver = await member(resources, "sender"), await member(resources, "receiver")
    headers = {
        "sender": sender.headers,
        "receiver": receiver.headers,
        "stranger": (await member(resources, "stranger")).headers,
        "moderator": (await member(resources, "mod", Role.moderator)).headers,
        "admin": (await member(resources, "root", Role.admin)).headers,
        "sender_key": await _key(client, sender, ["read"]),
        "receiver_key": await _key(client, receiver, ["read"]),
    }[actor]
    party = actor.removesuffix("_key") in ("sender", "receiver")
    read_only = actor.endswith("_key")

    async def new_request() -> str:
        await client.delete(f"{API}/friends/{receiver.id}", headers=sender.headers)
        response = await client.post(
            f"{API}/friend-requests", json={"receiver_id": receiver.id}, headers=sender.headers
        )
        assert response.status_code == 201, response.text
        request_id: str = response.json()["id"]
        return request_id

    async def status(request_id: str) -> str:
        response = await client.get(f"{API}/friend-requests/{request_id}", headers=sender.headers)
        result: str = response.json()["status"]
        return result

    first = await new_request()
    seen = await client.get(f"{API}/friend-requests/{first}", headers=headers)
    assert seen.status_code == (200 if party else 404), seen.text
    accept = await client.patch(f"{API}/friend-requests/{first}", json={"action": "accept"}, headers=headers)
    assert accept.status_code == (403 if read_only else 200 if actor == "receiver" else 404), accept.text
    if accept.status_code >= 400:
        assert await status(first) == "pending"
        await client.delete(f"{API}/friend-requests/{first}", headers=sender.headers)
    second = await new_request()
    cancel = await client.delete(f"{API}/friend-requests/{second}", headers=headers)
    assert cancel.status_code == (403 if read_only else 204 if actor == "sender" else 404), cancel.text
    if cancel.status_code >= 400:
        assert await status(second) == "pending"


# --- friendships, blocks, API keys ---------------------------------------------------------


async def test_friendships_and_blocks_of_others(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob, eve = (
        await member(resources, "ada"),
        await member(resources, "bob"),
        await member(resources, "eve"),
    )
    admin = await member(resources, "root", Role.admin)
    await befriend(resources, ada, bob)
    for caller in (eve, admin):
        await _refused(
            await client.delete(f"{API}/friends/{bob.id}", headers=caller.headers), 404, "not_friends"
        )
    assert (await client.get(f"{API}/users/{bob.id}", headers=ada.headers)).json()[
        "relationship"
    ] == "friends"

    await block(resources, ada, eve)
    for caller, target in ((bob, eve), (eve, ada), (admin, eve)):
        response = await client.delete(f"{API}/blocks/{target.id}", headers=caller.headers)
        await _refused(response, 404, "not_blocked")
    blocked = await client.get(f"{API}/blocks", headers=ada.headers)
    assert [item["user"]["id"] for item in blocked.json()["items"]] == [eve.id]


async def test_api_keys_of_others(client: httpx.AsyncClient, resources: Resources) -> None:
    owner, other = await member(resources, "owner"), await member(resources, "other")
    admin = await member(resources, "root", Role.admin)
    created = await client.post(f"{API}/users/me/api-keys", json={"name": "mine"}, headers=owner.headers)
    key_id, secret = created.json()["id"], created.json()["key"]
    for caller in (other, admin):
        response = await client.delete(f"{API}/users/me/api-keys/{key_id}", headers=caller.headers)
        await _refused(response, 404, "api_key_not_found")
    other_key = await _key(client, other, ["read", "write"])
    await _refused(await client.delete(f"{API}/users/me/api-keys/{key_id}", headers=other_key), 403)
    listed = await client.get(f"{API}/users/me/api-keys", headers=other.headers)
    assert key_id not in {item["id"] for item in listed.json()["items"]}
    assert (await client.get(f"{API}/users/me", headers={"X-API-Key": secret})).status_code == 200


async def test_sessions_of_others(client: httpx.AsyncClient, resources: Resources) -> None:
    owner, other = await member(resources, "owner"), await member(resources, "other")
    admin = await member(resources, "root", Role.admin)
    listed = await client.get(f"{API}/users/me/sessions", headers=owner.headers)
    (session_id,) = [item["id"] for item in listed.json()["items"]]
    for caller in (other, admin):
        response = await client.delete(f"{API}/users/me/sessions/{session_id}", headers=caller.headers)
        await _refused(response, 404, "session_not_found")
        others = await client.get(f"{API}/users/me/sessions", headers=caller.headers)
        assert session_id not in {item["id"] for item in others.json()["items"]}
    other_key = await _key(client, other, ["read", "write"])
    await _refused(await client.delete(f"{API}/users/me/sessions/{session_id}", headers=other_key), 403)
    assert (await client.get(f"{API}/users/me", headers=owner.headers)).status_code == 200


async def test_exports_of_others(client: httpx.AsyncClient, resources: Resources) -> None:
    owner, other = await member(resources, "owner"), await member(resources, "other")
    staff = [
        await member(resources, "moderator", Role.moderator),
        await member(resources, "root", Role.admin),
    ]
    created = await client.post(f"{API}/users/me/exports", headers=owner.headers)
    export_id = created.json()["id"]
    await resources.jobs.wait_idle()
    for caller in (other, *staff):
        for method, suffix in (("GET", ""), ("GET", "/archive"), ("POST", "/links")):
            response = await client.request(
                method, f"{API}/users/me/exports/{export_id}{suffix}", headers=caller.headers
            )
            await _refused(response, 404, "export_not_found")
        assert (await client.get(f"{API}/users/me/exports", headers=caller.headers)).json()["items"] == []
    other_key = await _key(client, other, ["read", "write"])
    await _refused(await client.get(f"{API}/users/me/exports/{export_id}", headers=other_key), 404)
    # A link is the owner's to ask for; a made-up one opens nothing.
    await _refused(
        await client.get(f"{API}/export-downloads/{uuid.uuid4().hex}"), 410, "download_link_invalid"
    )
    shown = await client.get(f"{API}/users/me/exports/{export_id}", headers=owner.headers)
    assert shown.json()["status"] == "ready"
    link = await client.post(f"{API}/users/me/exports/{export_id}/links", headers=owner.headers)
    assert (await client.get(link.json()["url"].removeprefix("https://kith.example"))).status_code == 200


# --- users hidden by blocks and suspension -------------------------------------------------


async def test_hidden_users(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, eve, sue = (
        await member(resources, "ada"),
        await member(resources, "eve"),
        await member(resources, "sue"),
    )
    moderator = await member(resources, "mod", Role.moderator)
    await block(resources, ada, eve)
    await set_suspended(resources, sue)
    hidden = [(eve, ada), (ada, eve), (ada, sue), (eve, sue)]
    for viewer, target in hidden:
        for suffix in ("", "/posts", "/friends"):
            response = await client.get(f"{API}/users/{target.id}{suffix}", headers=viewer.headers)
            await _refused(response, 404, "user_not_found")
    for suffix in ("", "/posts", "/friends"):
        assert (
            await client.get(f"{API}/users/{sue.id}{suffix}", headers=moderator.headers)
        ).status_code == 200
    # A made-up id answers exactly like a hidden one.
    made_up = await client.get(f"{API}/users/{uuid.uuid4()}", headers=ada.headers)
    hidden_one = await client.get(f"{API}/users/{eve.id}", headers=ada.headers)
    assert {k: v for k, v in made_up.json().items() if k != "request_id"} == {
        k: v for k, v in hidden_one.json().items() if k != "request_id"
    }


# --- reports and accounts: staff only ------------------------------------------------------


async def test_reports_and_accounts_are_for_staff(client: httpx.AsyncClient, resources: Resources) -> None:
    reporter, target = await member(resources, "reporter"), await member(resources, "target")
    moderator = await member(resources, "mod", Role.moderator)
    admin = await member(resources, "root", Role.admin)
    report = await client.post(
        f"{API}/reports",
        json={"target_type": "user", "target_id": target.id, "reason": "spam"},
        headers=reporter.headers,
    )
    report_id = report.json()["id"]
    for caller in (reporter, target):
        response = await client.patch(
            f"{API}/moderation/reports/{report_id}", json={"action": "dismiss"}, headers=caller.headers
        )
        await _refused(response, 403, "insufficient_role")
    handled = await client.patch(
        f"{API}/moderation/reports/{report_id}", json={"action": "dismiss"}, headers=moderator.headers
    )
    assert handled.status_code == 200
    for caller in (reporter, moderator):
        update = await client.patch(
            f"{API}/admin/users/{target.id}", json={"suspended": True}, headers=caller.headers
        )
        await _refused(update, 403, "insufficient_role")
        await _refused(await client.delete(f"{API}/admin/users/{target.id}", headers=caller.headers), 403)
    assert (await client.get(f"{API}/users/me", headers=target.headers)).status_code == 200
    assert (await client.delete(f"{API}/admin/users/{target.id}", headers=admin.headers)).status_code == 204


# --- objects named in bodies ---------------------------------------------------------------


async def test_objects_named_in_bodies(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, eve = await member(resources, "ada"), await member(resources, "eve")
    await block(resources, ada, eve)
    secret = await create_post(client, ada, content="just me", visibility="private")
    await _refused(
        await client.post(f"{API}/friend-requests", json={"receiver_id": ada.id}, headers=eve.headers),
        404,
        "user_not_found",
    )
    for target_type, target_id in (("post", secret["id"]), ("user", ada.id)):
        response = await client.post(
            f"{API}/reports",
            json={"target_type": target_type, "target_id": target_id, "reason": "spam"},
            headers=eve.headers,
        )
        await _refused(response, 404)
    # Blocking answers as if the blocker did not exist only for made-up ids.
    await _refused(
        await client.post(f"{API}/blocks", json={"user_id": str(uuid.uuid4())}, headers=eve.headers), 404
    )


async def test_notifications_of_others(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob, eve = (
        await member(resources, "ada"),
        await member(resources, "bob"),
        await member(resources, "eve"),
    )
    post = await create_post(client, ada, content="hi", visibility="public")
    await client.post(f"{API}/posts/{post['id']}/like", headers=bob.headers)
    listed = await client.get(f"{API}/notifications", headers=ada.headers)
    ids = [item["id"] for item in listed.json()["items"]]
    assert ids
    marked = await client.post(f"{API}/notifications/read", json={"ids": ids}, headers=eve.headers)
    assert marked.status_code == 204
    assert (await client.get(f"{API}/notifications/unread-count", headers=ada.headers)).json() == {"count": 1}
    assert (await client.get(f"{API}/notifications", headers=eve.headers)).json()["items"] == []


async def test_uploads_of_others(client: httpx.AsyncClient, resources: Resources) -> None:
    owner, other = await member(resources, "owner"), await member(resources, "other")
    theirs = await upload(resources, owner)
    attach = await client.post(
        f"{API}/posts", json={"content": "mine now", "media_ids": [theirs]}, headers=other.headers
    )
    await _refused(attach, 400, "media_not_available")
    avatar = await client.patch(f"{API}/users/me", json={"avatar_media_id": theirs}, headers=other.headers)
    await _refused(avatar, 400, "media_not_available")
    assert (await client.get(f"{API}/users/me", headers=other.headers)).json()["avatar_url"] is None
    assert (await client.get(f"{API}/users/{other.id}/posts", headers=other.headers)).json()["items"] == []
    # Files are served by an unguessable key (128 random bits), never by the upload's id.
    await _refused(await client.get(f"{MEDIA}/{theirs}"), 404, "media_not_found")
    await _refused(await client.get(f"{MEDIA}/{theirs}.jpg"), 404, "media_not_found")
