"""OWASP API3:2023 Broken Object Property Level Authorization.

Writes: every request body refuses properties it does not declare (no mass assignment):
its schema says `additionalProperties: false`, and the server answers 422 naming them,
changing nothing. Reads: a canary e-mail address and canary tokens planted in one
account never appear in anything another user, or a moderator, can fetch; and the only
response schemas with private properties are the owner's and the admin's views.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx
from fastapi import FastAPI

from kith.db.models import Role
from kith.mastodon.ids import to_mastodon_id
from kith.runtime.resources import Resources
from kith.web.assets import KITH
from tests.conftest import Mailbox
from tests.helpers import API, assert_problem, field_errors, signup
from tests.integration.test_mastodon_oauth import register_app, user_token
from tests.posting import befriend, comment, create_post, member, upload
from tests.security.inventory import served_routes

SMUGGLED = {
    "role": "admin",
    "id": "00000000-0000-7000-8000-000000000000",
    "suspended": False,
    "owner_id": "x",
}


def _json_bodies(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    document = app.openapi()
    bodies = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            for media_type, body in content.items():
                schema = body["schema"]
                if "$ref" in schema:
                    schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                bodies.append((method.upper(), path, {"media_type": media_type, **schema}))
    return bodies


def test_every_request_schema_refuses_undeclared_properties(app: FastAPI) -> None:
    bodies = _json_bodies(app)
    assert len(bodies) >= 20
    for method, path, schema in bodies:
        assert schema.get("additionalProperties") is False, (method, path, schema["media_type"])


async def test_every_body_refuses_smuggled_properties(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    admin = await member(resources, "root", Role.admin)
    owner = await member(resources, "owner")
    post = await create_post(client, owner, content="hello")
    ids = {"post_id": post["id"], "comment_id": (await comment(client, owner, post["id"]))["id"]}
    checked = 0
    for method, path, schema in _json_bodies(app):
        caller = admin if path.startswith((f"{API}/admin", f"{API}/moderation")) else owner
        before = (await client.get(f"{API}/users/me", headers=caller.headers)).json()
        url = _fill(path, {**ids, **dict.fromkeys(_names(path), "00000000-0000-7000-8000-000000000000")})
        # The web client's cookie routes take only requests from Kith's own pages.
        headers = {**caller.headers, "Origin": "http://testserver"}
        if schema["media_type"] == "application/json":
            response = await client.request(method, url, json=SMUGGLED, headers=headers)
        else:
            form = {name: str(value) for name, value in SMUGGLED.items()}
            files = {"file": ("a.png", b"not even an image")} if "multipart" in schema["media_type"] else None
            response = await client.request(method, url, data=form, files=files, headers=headers)
        body = assert_problem(response, 422, "validation_error")
        smuggled = {error["field"] for error in body["errors"] if error["type"] == "extra_forbidden"}
        declared = set(schema.get("properties", {}))
        expected = {f"body.{name}" for name in SMUGGLED if name not in declared}
        if "multipart" in schema["media_type"]:
            # The upload is parsed as it streams in and stops at the first part it refuses.
            assert smuggled and smuggled <= expected, (method, path, body["errors"])
        else:
            assert smuggled == expected, (method, path, body["errors"])
        assert (await client.get(f"{API}/users/me", headers=caller.headers)).json() == before
        checked += 1
    assert checked >= 20


def _names(path: str) -> list[str]:
    return [name for name in re.findall(r"\{([^}]+)\}", path) if name not in ("post_id", "comment_id")]


async def test_profile_changes_cannot_reach_role_or_address(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    for smuggled in ({"role": "admin"}, {"email": "x@example.com"}, {"email_verified": True}, {"id": "x"}):
        response = await client.patch(f"{API}/users/me", json={"bio": "hi", **smuggled}, headers=ada.headers)
        assert field_errors(response) == {f"body.{next(iter(smuggled))}"}
    me = (await client.get(f"{API}/users/me", headers=ada.headers)).json()
    assert (me["role"], me["email"], me["email_verified"], me["bio"]) == ("user", ada.email, False, "")


PRIVATE = {"email", "email_verified", "role", "suspended", "password", "password_hash", "key", "key_hash"}
# The response schemas that may carry private properties, and who gets them.
PRIVATE_VIEWS = {
    "PrivateUser": "the account owner (GET/PATCH /users/me, registration)",
    "AdminUserView": "admins (/admin/users)",
    "CreatedApiKey": "the key's owner, once, at creation",
}


def test_only_the_owners_and_admins_views_have_private_properties(app: FastAPI) -> None:
    document = app.openapi()
    schemas = document["components"]["schemas"]
    requests = {
        body["schema"]["$ref"].rsplit("/", 1)[1]
        for item in document["paths"].values()
        for operation in item.values()
        for body in operation.get("requestBody", {}).get("content", {}).values()
        if "$ref" in body["schema"]
    }
    assert len(requests) >= 20
    for name, schema in schemas.items():
        if name in requests:
            continue
        private = PRIVATE & set(schema.get("properties", {}))
        assert not private or name in PRIVATE_VIEWS, (name, private)


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda match: values[match.group(1)], path)


async def test_canaries_of_one_account_never_reach_another(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    canary = f"canary{secrets.token_hex(6)}"
    ada = await signup(client, "ada", email=f"{canary}@example.com")
    key = (await client.post(f"{API}/users/me/api-keys", json={"name": "k"}, headers=ada.headers)).json()
    await resources.jobs.wait_idle()
    verification = mailbox.token(ada.email, "Confirm your e-mail address")
    mastodon_app = await register_app(client)
    app_token = await user_token(client, mastodon_app, login="ada")
    secrets_of_ada = {
        app_token,
        mastodon_app.client_secret,
        ada.email,
        canary,
        ada.access_token,
        ada.refresh_token,
        key["key"],
        key["prefix"],
        verification,
        "$argon2",
    }
    bob = await member(resources, "bob")
    moderator = await member(resources, "mod", Role.moderator)
    await befriend(resources, ada, bob)
    post = await create_post(client, ada, content="hello friends", visibility="friends")
    await comment(client, ada, post["id"], "first!")
    await client.post(f"{API}/posts/{post['id']}/like", headers=bob.headers)
    carol = await member(resources, "carol")
    request = await client.post(f"{API}/friend-requests", json={"receiver_id": carol.id}, headers=ada.headers)
    await client.post(
        f"{API}/reports",
        json={"target_type": "user", "target_id": ada.id, "reason": "spam"},
        headers=bob.headers,
    )
    # Her data's archive, and a download link to it (its token is hers alone).
    export = (await client.post(f"{API}/users/me/exports", headers=ada.headers)).json()
    await resources.jobs.wait_idle()
    link = await client.post(f"{API}/users/me/exports/{export['id']}/links", headers=ada.headers)
    secrets_of_ada.add(link.json()["url"].rsplit("/", 1)[1])
    values = {
        "user_id": ada.id,
        "post_id": post["id"],
        "request_id": request.json()["id"],
        "code": "not_found",
        "export_id": export["id"],
        "token": "0" * 43,
    }
    values["key"] = "0" * 32 + ".png"
    values |= {"version": KITH.version, "name": "app.js", "session_id": ada.id}
    values["account_id"] = to_mastodon_id(ada.id)
    values["status_id"] = to_mastodon_id(post["id"])
    values["media_id"] = to_mastodon_id(await upload(resources, ada))
    values["notification_id"] = to_mastodon_id(post["id"])  # none of the viewers': 404
    # An open stream never ends, so here only its refusal; what streams carry, and to whom, is
    # tests/integration/test_mastodon_streaming.py's.
    values["path"] = "not-a-stream"
    fetched = 0
    for viewer in (bob, moderator, carol):
        for route in served_routes(app):
            if route.method != "GET":
                continue
            queries: list[dict[str, str]] = [{}]
            if route.path == f"{API}/users":
                queries = [{"q": canary[:6]}, {"q": "ada"}]
            if route.path == f"{API}/friend-requests":
                queries = [{"direction": "incoming"}, {"direction": "outgoing"}]
            if route.path in ("/api/v1/accounts/lookup", "/api/v2/search"):
                queries = [{"acct": "ada", "q": "ada"}, {"acct": canary, "q": canary[:6]}]
            if route.path == "/api/v1/accounts/relationships":
                queries = [{"id[]": values["account_id"]}]
            for query in queries:
                response = await client.get(_fill(route.path, values), params=query, headers=viewer.headers)
                fetched += 1
                text = response.text + " ".join(f"{k}: {v}" for k, v in response.headers.items())
                for secret in secrets_of_ada:
                    assert secret not in text, (route.path, secret)
    assert fetched > 60
