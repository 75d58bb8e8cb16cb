"""Personal API keys (docs/api.md#users): creation, use, scopes, limits, expiry, listing."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from kith.db.models import Role
from kith.runtime.resources import Resources
from tests.conftest import Mailbox
from tests.helpers import API, PASSWORD, Account, assert_problem, field_errors, login, signup, staff

KEYS = f"{API}/users/me/api-keys"


def key_headers(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def create_key(
    client: httpx.AsyncClient, account: Account, name: str = "script", **fields: Any
) -> dict[str, Any]:
    response = await client.post(KEYS, json={"name": name, **fields}, headers=account.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def list_keys(client: httpx.AsyncClient, account: Account, **params: str | int) -> dict[str, Any]:
    response = await client.get(KEYS, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- creation and listing -----------------------------------------------------------


async def test_create_shows_the_key_once(client: httpx.AsyncClient) -> None:
    account = await signup(client, "keymaker")
    response = await client.post(KEYS, json={"name": "  backup script  "}, headers=account.headers)
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    assert set(created) == {
        "id",
        "name",
        "prefix",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "key",
    }
    key = created["key"]
    assert key.startswith("kith_")
    # At least 128 bits of randomness after the prefix, in URL-safe base64.
    assert re.fullmatch(r"kith_[A-Za-z0-9_\-]{22,}", key)
    assert key.startswith(created["prefix"])
    assert len(created["prefix"]) < len(key) - 16
    assert created["name"] == "backup script"
    assert created["scopes"] == ["read"]
    assert created["expires_at"] is None
    assert created["last_used_at"] is None
    assert created["created_at"].endswith("Z")

    listed = await client.get(KEYS, headers=account.headers)
    assert listed.headers["cache-control"] == "no-store"
    assert key not in listed.text
    (item,) = listed.json()["items"]
    assert "key" not in item
    assert item == {name: value for name, value in created.items() if name != "key"}


async def test_two_keys_differ(client: httpx.AsyncClient) -> None:
    account = await signup(client, "twokeys")
    first = await create_key(client, account)
    second = await create_key(client, account)
    assert first["key"] != second["key"]
    assert first["id"] != second["id"]


async def test_create_with_write_scope_and_expiry(client: httpx.AsyncClient, resources: Resources) -> None:
    account = await signup(client, "planner")
    expires = (resources.clock.now() + timedelta(days=30)).replace(microsecond=0)
    created = await create_key(
        client, account, scopes=["write", "read", "write"], expires_at=expires.isoformat()
    )
    assert created["scopes"] == ["read", "write"]
    assert parse_time(created["expires_at"]) == expires
    assert created["expires_at"].endswith("Z")
    # An offset other than UTC is the same instant.
    eastern = expires.astimezone(timezone(timedelta(hours=-5)))
    other = await create_key(client, account, expires_at=eastern.isoformat())
    assert parse_time(other["expires_at"]) == expires


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "w", "scopes": ["write"]}, "body"),
        ({"name": "e", "scopes": []}, "body"),
        ({"name": "a", "scopes": ["read", "admin"]}, "body.scopes.1"),
        ({"name": "s", "scopes": "read"}, "body.scopes"),
        ({"name": ""}, "body.name"),
        ({"name": "   "}, "body.name"),
        ({"name": "n" * 101}, "body.name"),
        ({"name": "two\nlines"}, "body.name"),
        ({}, "body.name"),
        ({"name": "x", "expires_at": "2030-01-01T00:00:00"}, "body"),
        ({"name": "x", "expires_at": "soon"}, "body.expires_at"),
        ({"name": "x", "user_id": "someone"}, "body.user_id"),
        ({"name": "x", "key": "kith_chosen_by_me"}, "body.key"),
        ({"name": "x", "last_used_at": None}, "body.last_used_at"),
    ],
)
async def test_create_refuses_bad_bodies(client: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    account = await signup(client, "badkeys")
    response = await client.post(KEYS, json=body, headers=account.headers)
    assert_problem(response, 422, "validation_error")
    assert field in field_errors(response)
    assert (await list_keys(client, account))["items"] == []


async def test_scopes_without_read_are_refused_with_a_reason(client: httpx.AsyncClient) -> None:
    account = await signup(client, "writeonly")
    response = await client.post(KEYS, json={"name": "w", "scopes": ["write"]}, headers=account.headers)
    assert_problem(response, 422, "validation_error")
    assert any("read" in error["message"] for error in response.json()["errors"])


@pytest.mark.parametrize("delta", [timedelta(seconds=-1), timedelta(days=-400), timedelta(0)])
async def test_expiry_in_the_past_is_400(
    client: httpx.AsyncClient, resources: Resources, delta: timedelta
) -> None:
    account = await signup(client, "backdater")
    expires = resources.clock.now() + delta
    response = await client.post(
        KEYS, json={"name": "old", "expires_at": expires.isoformat()}, headers=account.headers
    )
    assert_problem(response, 400, "expiry_in_past")
    assert field_errors(response) == {"body.expires_at"}
    assert (await list_keys(client, account))["items"] == []


async def test_past_is_judged_by_the_application_clock(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    account = await signup(client, "timely")
    in_an_hour = resources.clock.now() + timedelta(hours=1)
    resources.clock.advance(hours=2)
    response = await client.post(
        KEYS, json={"name": "late", "expires_at": in_an_hour.isoformat()}, headers=account.headers
    )
    assert_problem(response, 400, "expiry_in_past")


async def test_keys_need_authentication(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(KEYS), 401, "not_authenticated")
    assert_problem(await client.post(KEYS, json={"name": "x"}), 401, "not_authenticated")


# --- using a key --------------------------------------------------------------------


async def test_key_authenticates_reads(client: httpx.AsyncClient) -> None:
    account = await signup(client, "reader_k")
    other = await signup(client, "someone_k")
    key = (await create_key(client, account))["key"]
    response = await client.get(f"{API}/users/me", headers=key_headers(key))
    assert response.status_code == 200
    assert response.json()["id"] == account.id
    profile = await client.get(f"{API}/users/{other.id}", headers=key_headers(key))
    assert profile.status_code == 200
    found = await client.get(f"{API}/users", params={"q": "someone"}, headers=key_headers(key))
    assert [item["id"] for item in found.json()["items"]] == [other.id]


async def test_unknown_key_is_401(client: httpx.AsyncClient) -> None:
    account = await signup(client, "guesser")
    key = (await create_key(client, account))["key"]
    for wrong in ("kith_not-a-real-key", key[:-1], key + "x", key.upper(), ""):
        response = await client.get(f"{API}/users/me", headers=key_headers(wrong))
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_last_used_at_is_recorded(client: httpx.AsyncClient, resources: Resources) -> None:
    account = await signup(client, "tracker")
    created = await create_key(client, account)
    assert (await client.get(f"{API}/users/me", headers=key_headers(created["key"]))).status_code == 200
    await resources.jobs.wait_idle()
    (item,) = (await list_keys(client, account))["items"]
    assert item["last_used_at"] is not None
    first_use = parse_time(item["last_used_at"])
    assert abs(first_use - resources.clock.now()) < timedelta(seconds=30)
    assert first_use >= parse_time(created["created_at"]) - timedelta(seconds=1)

    # A use soon after does not rewrite it; one after the refresh interval does.
    await client.get(f"{API}/users/me", headers=key_headers(created["key"]))
    await resources.jobs.wait_idle()
    assert (await list_keys(client, account))["items"][0]["last_used_at"] == item["last_used_at"]
    resources.clock.advance(hours=1)
    await client.get(f"{API}/users/me", headers=key_headers(created["key"]))
    await resources.jobs.wait_idle()
    later = parse_time((await list_keys(client, account))["items"][0]["last_used_at"])
    assert later - first_use >= timedelta(minutes=59)


async def test_unused_key_has_no_last_used_at(client: httpx.AsyncClient, resources: Resources) -> None:
    account = await signup(client, "idle_keys")
    used = await create_key(client, account, "used")
    await create_key(client, account, "unused")
    await client.get(f"{API}/users/me", headers=key_headers(used["key"]))
    await resources.jobs.wait_idle()
    items = {item["name"]: item for item in (await list_keys(client, account))["items"]}
    assert items["used"]["last_used_at"] is not None
    assert items["unused"]["last_used_at"] is None


async def test_read_key_cannot_write(client: httpx.AsyncClient) -> None:
    account = await signup(client, "readonly")
    key = (await create_key(client, account, scopes=["read"]))["key"]
    response = await client.patch(f"{API}/users/me", json={"bio": "changed"}, headers=key_headers(key))
    assert_problem(response, 403, "insufficient_scope")
    me = await client.get(f"{API}/users/me", headers=key_headers(key))
    assert me.json()["bio"] == ""


async def test_read_write_key_can_write(client: httpx.AsyncClient) -> None:
    account = await signup(client, "readwrite")
    key = (await create_key(client, account, scopes=["read", "write"]))["key"]
    response = await client.patch(f"{API}/users/me", json={"bio": "from a script"}, headers=key_headers(key))
    assert response.status_code == 200
    assert response.json()["bio"] == "from a script"
    me = await client.get(f"{API}/users/me", headers=account.headers)
    assert me.json()["bio"] == "from a script"


@pytest.mark.parametrize("scopes", [["read"], ["read", "write"]])
async def test_no_key_can_manage_credentials(client: httpx.AsyncClient, scopes: list[str]) -> None:
    account = await signup(client, "guarded")
    other_session = await login(client, "guarded")
    created = await create_key(client, account, "probe", scopes=scopes)
    headers = key_headers(created["key"])
    new_password = {"current_password": PASSWORD, "new_password": "a brand new secret"}
    attempts = [
        await client.get(KEYS, headers=headers),
        await client.post(KEYS, json={"name": "more"}, headers=headers),
        await client.delete(f"{KEYS}/{created['id']}", headers=headers),
        await client.post(f"{API}/users/me/password", json=new_password, headers=headers),
        await client.post(f"{API}/auth/logout", headers=headers),
        await client.post(f"{API}/auth/logout-all", headers=headers),
        await client.request("DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=headers),
    ]
    for response in attempts:
        # A read-only key is refused a write before the route looks at who is calling.
        read_only_write = scopes == ["read"] and response.request.method != "GET"
        code = "insufficient_scope" if read_only_write else "api_key_not_allowed"
        assert_problem(response, 403, code)
    # Nothing happened: one key, same password, every session alive, account present.
    assert [item["id"] for item in (await list_keys(client, account))["items"]] == [created["id"]]
    await login(client, "guarded", PASSWORD)
    bearer = {"Authorization": f"Bearer {other_session['access_token']}"}
    assert (await client.get(f"{API}/users/me", headers=bearer)).status_code == 200
    assert (await client.get(f"{API}/users/me", headers=headers)).status_code == 200


async def test_admin_key_cannot_use_admin_routes(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "key_admin", Role.admin)
    target = await signup(client, "bystander")
    key = (await create_key(client, admin, scopes=["read", "write"]))["key"]
    headers = key_headers(key)
    attempts = [
        await client.get(f"{API}/admin/users", headers=headers),
        await client.get(f"{API}/admin/audit-log", headers=headers),
        await client.patch(f"{API}/admin/users/{target.id}", json={"suspended": True}, headers=headers),
        await client.delete(f"{API}/admin/users/{target.id}", headers=headers),
    ]
    for response in attempts:
        assert_problem(response, 403, "api_key_not_allowed")
    # The key still works where keys may go, and the target was not touched.
    assert (await client.get(f"{API}/users/{target.id}", headers=headers)).status_code == 200
    assert (await client.get(f"{API}/users/me", headers=target.headers)).status_code == 200
    log = await client.get(f"{API}/admin/audit-log", headers=admin.headers)
    assert log.json()["items"] == []


@pytest.mark.parametrize("role", [Role.moderator, Role.admin])
async def test_a_staff_key_acts_as_a_plain_user(
    client: httpx.AsyncClient, resources: Resources, role: Role
) -> None:
    # Staff powers (removing others' content, reading every post) need an interactive login.
    member = await signup(client, "member")
    moderator = await staff(client, resources, "keyed_staff", role)
    key = key_headers((await create_key(client, moderator, scopes=["read", "write"]))["key"])
    public = await client.post(
        f"{API}/posts", json={"content": "mine", "visibility": "public"}, headers=member.headers
    )
    private = await client.post(
        f"{API}/posts", json={"content": "hush", "visibility": "private"}, headers=member.headers
    )
    comment = await client.post(
        f"{API}/posts/{public.json()['id']}/comments", json={"content": "a comment"}, headers=member.headers
    )
    assert_problem(await client.get(f"{API}/posts/{private.json()['id']}", headers=key), 404)
    assert_problem(await client.delete(f"{API}/posts/{public.json()['id']}", headers=key), 404)
    assert_problem(await client.delete(f"{API}/comments/{comment.json()['id']}", headers=key), 404)
    assert (await client.get(f"{API}/posts/{public.json()['id']}/comments", headers=member.headers)).json()[
        "items"
    ]
    # The same person, logged in, has the powers of the role.
    assert (
        await client.get(f"{API}/posts/{private.json()['id']}", headers=moderator.headers)
    ).status_code == 200
    assert (
        await client.delete(f"{API}/comments/{comment.json()['id']}", headers=moderator.headers)
    ).status_code == 204


# --- revocation and expiry ----------------------------------------------------------


async def test_deleted_key_is_401(client: httpx.AsyncClient) -> None:
    account = await signup(client, "revoker")
    created = await create_key(client, account)
    kept = await create_key(client, account, "kept")
    response = await client.delete(f"{KEYS}/{created['id']}", headers=account.headers)
    assert response.status_code == 204
    assert response.content == b""
    gone = await client.get(f"{API}/users/me", headers=key_headers(created["key"]))
    assert_problem(gone, 401, "invalid_token")
    assert gone.headers["www-authenticate"] == "Bearer"
    assert (await client.get(f"{API}/users/me", headers=key_headers(kept["key"]))).status_code == 200
    assert [item["id"] for item in (await list_keys(client, account))["items"]] == [kept["id"]]
    # Deleting it again: it is not there.
    again = await client.delete(f"{KEYS}/{created['id']}", headers=account.headers)
    assert_problem(again, 404, "api_key_not_found")


async def test_expired_key_is_401(client: httpx.AsyncClient, resources: Resources) -> None:
    account = await signup(client, "expiring")
    expires = resources.clock.now() + timedelta(hours=1)
    created = await create_key(client, account, expires_at=expires.isoformat())
    headers = key_headers(created["key"])
    resources.clock.advance(minutes=59)
    assert (await client.get(f"{API}/users/me", headers=headers)).status_code == 200
    resources.clock.advance(minutes=1, seconds=1)
    assert_problem(await client.get(f"{API}/users/me", headers=headers), 401, "invalid_token")


async def test_key_of_suspended_user_is_401(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "key_warden", Role.admin)
    account = await signup(client, "keyholder")
    headers = key_headers((await create_key(client, account))["key"])
    await client.patch(f"{API}/admin/users/{account.id}", json={"suspended": True}, headers=admin.headers)
    assert_problem(await client.get(f"{API}/users/me", headers=headers), 401, "invalid_token")
    await client.patch(f"{API}/admin/users/{account.id}", json={"suspended": False}, headers=admin.headers)
    assert (await client.get(f"{API}/users/me", headers=headers)).status_code == 200


async def test_key_of_deleted_account_is_401(client: httpx.AsyncClient) -> None:
    account = await signup(client, "vanishing")
    headers = key_headers((await create_key(client, account))["key"])
    response = await client.request(
        "DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=account.headers
    )
    assert response.status_code == 204
    assert_problem(await client.get(f"{API}/users/me", headers=headers), 401, "invalid_token")


async def test_cannot_delete_another_users_key(client: httpx.AsyncClient) -> None:
    owner = await signup(client, "owner_k")
    thief = await signup(client, "thief_k")
    created = await create_key(client, owner)
    response = await client.delete(f"{KEYS}/{created['id']}", headers=thief.headers)
    assert_problem(response, 404, "api_key_not_found")
    assert (await client.get(f"{API}/users/me", headers=key_headers(created["key"]))).status_code == 200
    assert_problem(
        await client.delete(f"{KEYS}/no-such-key", headers=owner.headers), 404, "api_key_not_found"
    )


async def test_lists_are_per_user(client: httpx.AsyncClient) -> None:
    first = await signup(client, "lister_a")
    second = await signup(client, "lister_b")
    mine = await create_key(client, first, "mine")
    await create_key(client, second, "theirs")
    assert [item["id"] for item in (await list_keys(client, first))["items"]] == [mine["id"]]


# --- pagination ---------------------------------------------------------------------


async def test_list_is_cursor_paginated_newest_first(client: httpx.AsyncClient) -> None:
    account = await signup(client, "hoarder")
    created = [(await create_key(client, account, f"key {number}"))["id"] for number in range(5)]
    newest_first = list(reversed(created))

    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 2}
    pages = 0
    while True:
        response = await client.get(KEYS, params=params, headers=account.headers)
        assert response.status_code == 200
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        seen += [item["id"] for item in page["items"]]
        pages += 1
        if page["next_cursor"] is None:
            assert "link" not in response.headers
            break
        assert len(page["items"]) == 2
        link = response.headers["link"]
        match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
        assert match, link
        url = httpx.URL(match.group(1))
        assert str(url).startswith(f"https://kith.example{KEYS}?")
        assert url.params["cursor"] == page["next_cursor"]
        assert url.params["limit"] == "2"
        params = {"limit": 2, "cursor": page["next_cursor"]}
    assert seen == newest_first
    assert pages == 3


async def test_list_default_and_maximum_limit(client: httpx.AsyncClient) -> None:
    account = await signup(client, "limits")
    for number in range(3):
        await create_key(client, account, f"k{number}")
    everything = await list_keys(client, account)
    assert len(everything["items"]) == 3
    assert everything["next_cursor"] is None
    exact = await client.get(KEYS, params={"limit": 3}, headers=account.headers)
    assert exact.json()["next_cursor"] is None
    assert "link" not in exact.headers
    assert (await client.get(KEYS, params={"limit": 100}, headers=account.headers)).status_code == 200


@pytest.mark.parametrize("limit", [0, 101, -1, "many"])
async def test_list_refuses_bad_limit(client: httpx.AsyncClient, limit: int | str) -> None:
    account = await signup(client, "overreach")
    response = await client.get(KEYS, params={"limit": limit}, headers=account.headers)
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {"query.limit"}


@pytest.mark.parametrize("cursor", ["garbage", "eyJhZnRlciI6IDF9", "e30", "!!!", "bm90IGpzb24"])
async def test_list_refuses_invalid_cursor(client: httpx.AsyncClient, cursor: str) -> None:
    account = await signup(client, "cursed")
    response = await client.get(KEYS, params={"cursor": cursor}, headers=account.headers)
    assert_problem(response, 422, "invalid_cursor")


# --- keys do not outlive the credential that made them --------------------------------


async def key_works(client: httpx.AsyncClient, key: str) -> bool:
    response = await client.get(f"{API}/users/me", headers=key_headers(key))
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


async def test_a_password_change_revokes_every_key(client: httpx.AsyncClient) -> None:
    account = await signup(client, "changer")
    keys = [(await create_key(client, account, name))["key"] for name in ("one", "two")]
    assert all([await key_works(client, key) for key in keys])
    change = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a different secret"},
        headers=account.headers,
    )
    assert change.status_code == 204
    assert not any([await key_works(client, key) for key in keys])
    assert (await list_keys(client, account))["items"] == []


async def test_a_password_reset_revokes_every_key_and_verifies_the_address(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    # The chain of the review: someone registers another person's address (it stays
    # unverified) and makes a key; the address's owner takes the account over by a reset.
    squatter = await signup(client, "squatter", email="owner@example.com")
    key = (await create_key(client, squatter))["key"]
    assert (
        await client.post(f"{API}/auth/password-reset", json={"email": "owner@example.com"})
    ).status_code == 202
    await resources.jobs.wait_idle()
    token = mailbox.token("owner@example.com", "Reset your Kith password")
    confirm = await client.post(
        f"{API}/auth/password-reset/confirm",
        json={"token": token, "new_password": "a fresh passphrase of mine"},
    )
    assert confirm.status_code == 204
    assert not await key_works(client, key)
    owner = await login(client, "squatter", "a fresh passphrase of mine")
    me = await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {owner['access_token']}"})
    assert me.json()["email_verified"] is True


async def test_keys_made_before_verification_do_not_survive_it(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    account = await signup(client, "early")
    before = (await create_key(client, account, "before"))["key"]
    await resources.jobs.wait_idle()
    token = mailbox.token(account.email, "Confirm your e-mail address")
    assert (await client.post(f"{API}/auth/verify-email", json={"token": token})).status_code == 204
    assert not await key_works(client, before)
    after = (await create_key(client, account, "after"))["key"]
    assert await key_works(client, after)
