"""Users (docs/api.md#users) through the HTTP API: own account, profile edits, password, deletion, search."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from kith.db.models import Role
from kith.runtime.resources import Resources
from tests.helpers import API, PASSWORD, Account, assert_problem, field_errors, login, register, signup, staff

PRIVATE_FIELDS = {
    "id",
    "username",
    "email",
    "email_verified",
    "display_name",
    "bio",
    "avatar_url",
    "role",
    "created_at",
}
PUBLIC_FIELDS = {"id", "username", "display_name", "bio", "avatar_url", "created_at"}
NEW_PASSWORD = "a fresh long secret"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me(client: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    response = await client.get(f"{API}/users/me", headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def patch_me(client: httpx.AsyncClient, account: Account, body: dict[str, Any]) -> httpx.Response:
    return await client.patch(f"{API}/users/me", json=body, headers=account.headers)


async def change_password(
    client: httpx.AsyncClient, account: Account, current: str, new: str
) -> httpx.Response:
    return await client.post(
        f"{API}/users/me/password",
        json={"current_password": current, "new_password": new},
        headers=account.headers,
    )


async def delete_me(client: httpx.AsyncClient, account: Account, password: str) -> httpx.Response:
    return await client.request(
        "DELETE", f"{API}/users/me", json={"password": password}, headers=account.headers
    )


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{API}/auth/refresh", json={"refresh_token": token})


async def login_response(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(f"{API}/auth/login", json={"username": username, "password": password})


async def search(client: httpx.AsyncClient, account: Account, **params: str | int) -> dict[str, Any]:
    response = await client.get(f"{API}/users", params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def usernames(page: dict[str, Any]) -> list[str]:
    return [item["username"] for item in page["items"]]


# --- GET /users/me ------------------------------------------------------------------


async def test_me_is_the_private_view(client: httpx.AsyncClient) -> None:
    account = await signup(client, "Private_Ann", display_name="Ann")
    response = await client.get(f"{API}/users/me", headers=account.headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == PRIVATE_FIELDS
    assert body["id"] == account.id
    assert body["username"] == "Private_Ann"
    assert body["email"] == "private_ann@example.com"
    assert body["email_verified"] is False
    assert body["display_name"] == "Ann"
    assert body["bio"] == ""
    assert body["avatar_url"] is None
    assert body["role"] == "user"
    assert body["created_at"].endswith("Z")
    assert response.headers["cache-control"] == "no-store"


async def test_me_shows_staff_role(client: httpx.AsyncClient, resources: Resources) -> None:
    moderator = await staff(client, resources, "mod_mary", Role.moderator)
    body = await me(client, moderator)
    assert body["role"] == "moderator"
    assert body["email_verified"] is True


async def test_me_needs_authentication(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/users/me")
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


# --- PATCH /users/me ----------------------------------------------------------------


async def test_patch_changes_display_name_and_bio(client: httpx.AsyncClient) -> None:
    account = await signup(client, "editor")
    response = await patch_me(client, account, {"display_name": "Ed Itor", "bio": "Line one\nLine two\tend"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == PRIVATE_FIELDS
    assert body["display_name"] == "Ed Itor"
    assert body["bio"] == "Line one\nLine two\tend"
    assert response.headers["cache-control"] == "no-store"
    stored = await me(client, account)
    assert stored["display_name"] == "Ed Itor"
    assert stored["bio"] == "Line one\nLine two\tend"


async def test_patch_leaves_absent_fields_alone(client: httpx.AsyncClient) -> None:
    account = await signup(client, "partial")
    await patch_me(client, account, {"display_name": "Part", "bio": "kept"})
    response = await patch_me(client, account, {"bio": "changed"})
    assert response.status_code == 200
    assert response.json()["display_name"] == "Part"
    response = await patch_me(client, account, {"display_name": "Whole"})
    assert response.json()["bio"] == "changed"
    assert response.json()["display_name"] == "Whole"


async def test_patch_can_clear_bio(client: httpx.AsyncClient) -> None:
    account = await signup(client, "clearer")
    await patch_me(client, account, {"bio": "something"})
    response = await patch_me(client, account, {"bio": ""})
    assert response.status_code == 200
    assert (await me(client, account))["bio"] == ""


async def test_patch_trims_strings(client: httpx.AsyncClient) -> None:
    account = await signup(client, "trimmer")
    response = await patch_me(
        client, account, {"display_name": "  Tidy Name \t", "bio": "\n  spaced out  \n"}
    )
    assert response.status_code == 200
    stored = await me(client, account)
    assert stored["display_name"] == "Tidy Name"
    assert stored["bio"] == "spaced out"


async def test_bio_limit_is_500_characters_after_trimming(client: httpx.AsyncClient) -> None:
    account = await signup(client, "writer")
    # Characters, not bytes: 500 emoji are 2000 bytes of UTF-8 and still fit.
    for bio in ("b" * 500, "😀" * 500, "  " + "c" * 500 + "  "):
        response = await patch_me(client, account, {"bio": bio})
        assert response.status_code == 200, response.text
        assert (await me(client, account))["bio"] == bio.strip()
    too_long = await patch_me(client, account, {"bio": "d" * 501})
    assert_problem(too_long, 422, "validation_error")
    assert field_errors(too_long) == {"body.bio"}
    assert (await me(client, account))["bio"] == "c" * 500


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"display_name": ""}, "body.display_name"),
        ({"display_name": "   "}, "body.display_name"),
        ({"display_name": "x" * 51}, "body.display_name"),
        ({"display_name": "two\nlines"}, "body.display_name"),
        ({"display_name": "nul\x00byte"}, "body.display_name"),
        ({"display_name": "bell\x07"}, "body.display_name"),
        ({"display_name": "esc\x1b[31mred"}, "body.display_name"),
        ({"display_name": "del\x7f"}, "body.display_name"),
        ({"display_name": "csi\x9b31mred"}, "body.display_name"),
        # Bidirectional overrides, embeddings and isolates make a name read as another.
        ({"display_name": "evil\u202egnp.exe"}, "body.display_name"),
        ({"display_name": "ad\u202amin"}, "body.display_name"),
        ({"display_name": "\u2066admin\u2069"}, "body.display_name"),
        # Names that show nothing, or begin or end with an invisible character.
        ({"display_name": "\u200b\u200b\u200b"}, "body.display_name"),
        ({"display_name": "\u3164"}, "body.display_name"),
        ({"display_name": "\u2060Ada"}, "body.display_name"),
        ({"display_name": "Ada\ufeff"}, "body.display_name"),
        ({"bio": "nul\x00byte"}, "body.bio"),
        ({"bio": "carriage\rreturn"}, "body.bio"),
        ({"bio": "esc\x1b[2J"}, "body.bio"),
        ({"bio": "next line\x85here"}, "body.bio"),
        ({"display_name": 42}, "body.display_name"),
        ({"bio": ["not", "text"]}, "body.bio"),
    ],
)
async def test_patch_refuses_bad_values(client: httpx.AsyncClient, body: dict[str, Any], field: str) -> None:
    account = await signup(client, "refused")
    before = await me(client, account)
    response = await patch_me(client, account, body)
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {field}
    assert await me(client, account) == before


@pytest.mark.parametrize(
    "display_name", ["two\nlines", "esc\x1b[31mred", "csi\x9b31mred", "nul\x00", "a\u202eb", "\u200b"]
)
async def test_registration_applies_the_same_display_name_rules(
    client: httpx.AsyncClient, display_name: str
) -> None:
    # Otherwise a name refused by PATCH /users/me could be had by registering with it.
    response = await register(client, "namer", display_name=display_name)
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {"body.display_name"}


@pytest.mark.parametrize(
    "extra",
    [
        {"role": "admin"},
        {"id": "01234567-89ab-7def-8123-456789abcdef"},
        {"email_verified": True},
        {"email": "taken@example.com"},
        {"username": "renamed"},
        {"suspended": False},
        {"password_hash": "x"},
    ],
)
async def test_patch_refuses_unknown_fields(client: httpx.AsyncClient, extra: dict[str, Any]) -> None:
    account = await signup(client, "massive")
    before = await me(client, account)
    response = await patch_me(client, account, {"display_name": "Sneaky", **extra})
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {f"body.{next(iter(extra))}"}
    # Nothing applied, not even the valid field beside the forbidden one.
    assert await me(client, account) == before


async def test_patch_needs_authentication(client: httpx.AsyncClient) -> None:
    response = await client.patch(f"{API}/users/me", json={"bio": "anonymous"})
    assert_problem(response, 401, "not_authenticated")


async def test_patch_with_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    account = await signup(client, "garbled")
    response = await client.patch(
        f"{API}/users/me",
        content=b"{not json",
        headers={**account.headers, "Content-Type": "application/json"},
    )
    assert_problem(response, 422, "malformed_json")


async def test_profile_changes_show_in_public_view(client: httpx.AsyncClient) -> None:
    author = await signup(client, "author")
    reader = await signup(client, "reader")
    await patch_me(client, author, {"display_name": "The Author", "bio": "Writes things."})
    response = await client.get(f"{API}/users/{author.id}", headers=reader.headers)
    assert response.json()["display_name"] == "The Author"
    assert response.json()["bio"] == "Writes things."


# --- POST /users/me/password --------------------------------------------------------


async def test_change_password_keeps_this_session_and_ends_the_others(client: httpx.AsyncClient) -> None:
    account = await signup(client, "changer")
    other = await login(client, "changer")
    response = await change_password(client, account, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 204
    assert response.content == b""
    # The session that made the change lives on, access and refresh token alike.
    assert (await client.get(f"{API}/users/me", headers=account.headers)).status_code == 200
    assert (await refresh(client, account.refresh_token)).status_code == 200
    # Every other session ends at once.
    assert_problem(await client.get(f"{API}/users/me", headers=bearer(other["access_token"])), 401)
    assert_problem(await refresh(client, other["refresh_token"]), 401, "invalid_token")


async def test_new_password_works_and_old_one_does_not(client: httpx.AsyncClient) -> None:
    account = await signup(client, "switcher")
    assert (await change_password(client, account, PASSWORD, NEW_PASSWORD)).status_code == 204
    assert_problem(await login_response(client, "switcher", PASSWORD), 401, "invalid_credentials")
    await login(client, "switcher", NEW_PASSWORD)


async def test_wrong_current_password_is_403_and_changes_nothing(client: httpx.AsyncClient) -> None:
    account = await signup(client, "forgetter")
    other = await login(client, "forgetter")
    response = await change_password(client, account, "not my password", NEW_PASSWORD)
    assert_problem(response, 403, "wrong_password")
    assert (await client.get(f"{API}/users/me", headers=bearer(other["access_token"]))).status_code == 200
    await login(client, "forgetter", PASSWORD)
    assert_problem(await login_response(client, "forgetter", NEW_PASSWORD), 401, "invalid_credentials")


async def test_current_password_is_not_trimmed(client: httpx.AsyncClient) -> None:
    account = await signup(client, "exacting")
    response = await change_password(client, account, f" {PASSWORD} ", NEW_PASSWORD)
    assert_problem(response, 403, "wrong_password")


@pytest.mark.parametrize(
    "new_password",
    [
        "pwrules",  # too short
        "p" * 129,  # too long
        "PwRules1",  # the username, in another case
        "pwrules1@example.com",  # the e-mail address
        "password123",  # common
    ],
)
async def test_new_password_rules(client: httpx.AsyncClient, new_password: str) -> None:
    account = await signup(client, "pwrules1")
    other = await login(client, "pwrules1")
    response = await change_password(client, account, PASSWORD, new_password)
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {"body.new_password"}
    # A refused change is rolled back entirely: old password, other sessions intact.
    await login(client, "pwrules1", PASSWORD)
    assert (await client.get(f"{API}/users/me", headers=bearer(other["access_token"]))).status_code == 200


async def test_new_password_is_taken_exactly_as_typed(client: httpx.AsyncClient) -> None:
    account = await signup(client, "spaced")
    assert (await change_password(client, account, PASSWORD, "  padded new secret  ")).status_code == 204
    assert_problem(await login_response(client, "spaced", "padded new secret"), 401)
    await login(client, "spaced", "  padded new secret  ")


async def test_change_password_needs_both_fields(client: httpx.AsyncClient) -> None:
    account = await signup(client, "halfway")
    response = await client.post(
        f"{API}/users/me/password", json={"new_password": NEW_PASSWORD}, headers=account.headers
    )
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {"body.current_password"}


async def test_change_password_needs_authentication(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/users/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert_problem(response, 401, "not_authenticated")


# --- DELETE /users/me ---------------------------------------------------------------


async def test_delete_account(client: httpx.AsyncClient) -> None:
    account = await signup(client, "departing")
    other_session = await login(client, "departing")
    friend = await signup(client, "stayer")
    response = await delete_me(client, account, PASSWORD)
    assert response.status_code == 204
    assert response.content == b""
    # Every token of the account stops working.
    for token in (account.access_token, other_session["access_token"]):
        assert_problem(await client.get(f"{API}/users/me", headers=bearer(token)), 401)
    assert_problem(await refresh(client, other_session["refresh_token"]), 401)
    # Others no longer see it, and it cannot log in.
    assert_problem(
        await client.get(f"{API}/users/{account.id}", headers=friend.headers), 404, "user_not_found"
    )
    assert usernames(await search(client, friend, q="departing")) == []
    assert_problem(await login_response(client, "departing", PASSWORD), 401, "invalid_credentials")
    # The name and address are free again.
    assert (await register(client, "departing")).status_code == 201


async def test_delete_account_with_wrong_password_is_403(client: httpx.AsyncClient) -> None:
    account = await signup(client, "cautious")
    assert_problem(await delete_me(client, account, "not the password"), 403, "wrong_password")
    assert (await me(client, account))["username"] == "cautious"
    await login(client, "cautious")


async def test_delete_account_needs_the_password_field(client: httpx.AsyncClient) -> None:
    account = await signup(client, "bodiless")
    response = await client.request("DELETE", f"{API}/users/me", json={}, headers=account.headers)
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {"body.password"}
    response = await client.request(
        "DELETE", f"{API}/users/me", json={"password": PASSWORD, "force": True}, headers=account.headers
    )
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {"body.force"}
    assert (await me(client, account))["username"] == "bodiless"


async def test_delete_account_needs_authentication(client: httpx.AsyncClient) -> None:
    response = await client.request("DELETE", f"{API}/users/me", json={"password": PASSWORD})
    assert_problem(response, 401, "not_authenticated")


# --- GET /users?q= ------------------------------------------------------------------


async def test_search_by_username_or_display_name_prefix(client: httpx.AsyncClient) -> None:
    viewer = await signup(client, "viewer")
    await signup(client, "alice", display_name="Alice A")
    await signup(client, "Alicia", display_name="Zed")
    await signup(client, "bob", display_name="Alistair Bob")
    await signup(client, "malik", display_name="Malik")  # "ali" inside, not at the start
    await signup(client, "carol", display_name="Carol")
    page = await search(client, viewer, q="ALI")
    assert usernames(page) == ["alice", "Alicia", "bob"]
    assert page["total"] == 3
    assert {tuple(sorted(item)) for item in page["items"]} == {tuple(sorted(PUBLIC_FIELDS))}
    assert usernames(await search(client, viewer, q="alis")) == ["bob"]
    assert usernames(await search(client, viewer, q="  car  ")) == ["carol"]
    assert usernames(await search(client, viewer, q="nobody")) == []


async def test_search_pages(client: httpx.AsyncClient) -> None:
    viewer = await signup(client, "pager")
    for name in ("page_a", "page_b", "page_c", "page_d", "page_e"):
        await register(client, name)
    first = await search(client, viewer, q="page_", page_size=2)
    assert first == {
        "items": first["items"],
        "total": 5,
        "page": 1,
        "page_size": 2,
        "total_pages": 3,
    }
    assert usernames(first) == ["page_a", "page_b"]
    second = await search(client, viewer, q="page_", page=2, page_size=2)
    assert usernames(second) == ["page_c", "page_d"]
    third = await search(client, viewer, q="page_", page=3, page_size=2)
    assert usernames(third) == ["page_e"]
    beyond = await search(client, viewer, q="page_", page=4, page_size=2)
    assert beyond["items"] == []
    assert beyond["total"] == 5
    default = await search(client, viewer, q="page_")
    assert default["page"] == 1
    assert default["page_size"] == 20
    assert default["total_pages"] == 1
    empty = await search(client, viewer, q="zzz")
    assert (empty["total"], empty["total_pages"], empty["items"]) == (0, 0, [])


async def test_search_without_q_lists_everyone(client: httpx.AsyncClient) -> None:
    viewer = await signup(client, "everyone_b")
    await signup(client, "everyone_a")
    page = await search(client, viewer)
    assert usernames(page) == ["everyone_a", "everyone_b"]
    assert page["total"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page_size": 101}, "query.page_size"),
        ({"page_size": 0}, "query.page_size"),
        ({"page": 0}, "query.page"),
        ({"page": "first"}, "query.page"),
        ({"q": "q" * 51}, "query.q"),
    ],
)
async def test_search_refuses_bad_parameters(
    client: httpx.AsyncClient, params: dict[str, str | int], field: str
) -> None:
    viewer = await signup(client, "strict")
    response = await client.get(f"{API}/users", params=params, headers=viewer.headers)
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {field}


async def test_search_accepts_page_size_100(client: httpx.AsyncClient) -> None:
    viewer = await signup(client, "biggest")
    page = await search(client, viewer, page_size=100)
    assert page["page_size"] == 100


async def test_search_treats_like_wildcards_literally(client: httpx.AsyncClient) -> None:
    viewer = await signup(client, "wildcard")
    await signup(client, "x_1", display_name="Plain")
    await signup(client, "xy1", display_name="Plain")
    await signup(client, "percent", display_name="100% real")
    await signup(client, "hundreds", display_name="1000 real")
    await signup(client, "slasher", display_name="back\\slash")
    await signup(client, "backstop", display_name="backstop")
    assert usernames(await search(client, viewer, q="x_")) == ["x_1"]
    assert usernames(await search(client, viewer, q="_")) == []
    assert usernames(await search(client, viewer, q="%")) == []
    assert usernames(await search(client, viewer, q="100%")) == ["percent"]
    assert usernames(await search(client, viewer, q="back\\")) == ["slasher"]
    assert usernames(await search(client, viewer, q="\\")) == []


async def test_search_hides_suspended_users_from_users(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    admin = await staff(client, resources, "hider", Role.admin)
    viewer = await signup(client, "seeker")
    hidden = await signup(client, "hidden_one")
    await signup(client, "hidden_two")
    response = await client.patch(
        f"{API}/admin/users/{hidden.id}", json={"suspended": True}, headers=admin.headers
    )
    assert response.status_code == 200
    page = await search(client, viewer, q="hidden")
    assert usernames(page) == ["hidden_two"]
    assert page["total"] == 1


async def test_search_needs_authentication(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"{API}/users", params={"q": "a"}), 401, "not_authenticated")


# --- GET /users/{id} ----------------------------------------------------------------


async def test_public_view_has_no_private_fields(client: httpx.AsyncClient) -> None:
    target = await signup(client, "Publicist", display_name="Pub")
    viewer = await signup(client, "onlooker")
    response = await client.get(f"{API}/users/{target.id}", headers=viewer.headers)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == PUBLIC_FIELDS | {"friend_count", "post_count", "relationship"}
    assert body["id"] == target.id
    assert body["username"] == "Publicist"
    assert body["display_name"] == "Pub"
    assert body["created_at"].endswith("Z")
    assert "publicist@example.com" not in response.text


async def test_unknown_user_is_404_problem(client: httpx.AsyncClient) -> None:
    viewer = await signup(client, "prober")
    for user_id in ("01890a5d-ac96-774b-bcce-b302099a8057", "not-an-id", "x" * 200):
        response = await client.get(f"{API}/users/{user_id}", headers=viewer.headers)
        assert_problem(response, 404, "user_not_found")


async def test_user_by_id_needs_authentication(client: httpx.AsyncClient) -> None:
    target = await signup(client, "shy")
    assert_problem(await client.get(f"{API}/users/{target.id}"), 401, "not_authenticated")


async def test_suspended_user_is_404_for_users_but_visible_to_staff(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    admin = await staff(client, resources, "warden", Role.admin)
    moderator = await staff(client, resources, "deputy", Role.moderator)
    viewer = await signup(client, "citizen")
    target = await signup(client, "outlaw")
    await client.patch(f"{API}/admin/users/{target.id}", json={"suspended": True}, headers=admin.headers)
    assert_problem(
        await client.get(f"{API}/users/{target.id}", headers=viewer.headers), 404, "user_not_found"
    )
    assert (await client.get(f"{API}/users/{target.id}", headers=moderator.headers)).status_code == 200
