"""Administration: the user directory, roles, suspension, deletion, audit log.

See docs/api.md#moderation-and-administration.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from kith.db.models import Role
from kith.runtime.resources import Resources
from tests.helpers import API, PASSWORD, Account, assert_problem, field_errors, login, signup, staff

USERS = f"{API}/admin/users"
AUDIT = f"{API}/admin/audit-log"
MISSING_ID = "01890a5d-ac96-774b-bcce-b302099a8057"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def directory(client: httpx.AsyncClient, admin: Account, **params: str | int) -> dict[str, Any]:
    response = await client.get(USERS, params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def update(
    client: httpx.AsyncClient, admin: Account, user_id: str, changes: dict[str, Any]
) -> httpx.Response:
    return await client.patch(f"{USERS}/{user_id}", json=changes, headers=admin.headers)


async def audit(client: httpx.AsyncClient, admin: Account, **params: str | int) -> dict[str, Any]:
    response = await client.get(AUDIT, params=params, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def login_response(client: httpx.AsyncClient, username: str) -> httpx.Response:
    return await client.post(f"{API}/auth/login", json={"username": username, "password": PASSWORD})


# --- who may use the admin API ------------------------------------------------------


async def test_admin_routes_refuse_anonymous_callers(client: httpx.AsyncClient) -> None:
    target = await signup(client, "anon_target")
    attempts = [
        await client.get(USERS),
        await client.patch(f"{USERS}/{target.id}", json={"suspended": True}),
        await client.delete(f"{USERS}/{target.id}"),
        await client.get(AUDIT),
    ]
    for response in attempts:
        assert_problem(response, 401, "not_authenticated")
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("role", [Role.user, Role.moderator])
async def test_admin_routes_refuse_users_and_moderators(
    client: httpx.AsyncClient, resources: Resources, role: Role
) -> None:
    caller = await staff(client, resources, f"not_admin_{role.value}", role)
    target = await signup(client, "role_target")
    attempts = [
        await client.get(USERS, headers=caller.headers),
        await client.patch(f"{USERS}/{target.id}", json={"role": "admin"}, headers=caller.headers),
        await client.patch(f"{USERS}/{caller.id}", json={"role": "admin"}, headers=caller.headers),
        await client.delete(f"{USERS}/{target.id}", headers=caller.headers),
        await client.get(AUDIT, headers=caller.headers),
    ]
    for response in attempts:
        assert_problem(response, 403, "insufficient_role")
    me = await client.get(f"{API}/users/me", headers=caller.headers)
    assert me.json()["role"] == role.value
    assert (await client.get(f"{API}/users/me", headers=target.headers)).status_code == 200


# --- GET /admin/users ---------------------------------------------------------------


async def test_directory_lists_everyone_with_private_fields(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    admin = await staff(client, resources, "dir_admin", Role.admin)
    active = await signup(client, "dir_active")
    banned = await signup(client, "dir_banned")
    assert (await update(client, admin, banned.id, {"suspended": True})).status_code == 200
    page = await directory(client, admin)
    assert page["total"] == 3
    assert page["page"] == 1
    assert page["page_size"] == 20
    assert page["total_pages"] == 1
    rows = {item["username"]: item for item in page["items"]}
    assert list(rows) == ["dir_active", "dir_admin", "dir_banned"]
    assert rows["dir_banned"]["suspended"] is True
    assert rows["dir_active"]["suspended"] is False
    assert rows["dir_active"]["email"] == "dir_active@example.com"
    assert rows["dir_active"]["id"] == active.id
    assert rows["dir_admin"]["role"] == "admin"
    assert set(rows["dir_active"]) == {
        "id",
        "username",
        "email",
        "email_verified",
        "display_name",
        "bio",
        "avatar_url",
        "role",
        "created_at",
        "suspended",
    }


async def test_directory_search_and_pages(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "pg_admin", Role.admin)
    for name in ("member_a", "member_b", "member_c"):
        await signup(client, name)
    await signup(client, "outsider", display_name="Member Emeritus")
    first = await directory(client, admin, q="MEMBER", page_size=2)
    assert [item["username"] for item in first["items"]] == ["member_a", "member_b"]
    assert (first["total"], first["page"], first["page_size"], first["total_pages"]) == (4, 1, 2, 2)
    second = await directory(client, admin, q="member", page=2, page_size=2)
    assert [item["username"] for item in second["items"]] == ["member_c", "outsider"]
    assert (await directory(client, admin, q="member_%"))["total"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [({"page_size": 101}, "query.page_size"), ({"page": 0}, "query.page"), ({"q": "q" * 51}, "query.q")],
)
async def test_directory_refuses_bad_parameters(
    client: httpx.AsyncClient, resources: Resources, params: dict[str, int | str], field: str
) -> None:
    admin = await staff(client, resources, "param_admin", Role.admin)
    response = await client.get(USERS, params=params, headers=admin.headers)
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {field}


# --- PATCH /admin/users/{id} --------------------------------------------------------


async def test_change_role(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "role_admin", Role.admin)
    target = await signup(client, "promoted")
    response = await update(client, admin, target.id, {"role": "moderator"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["id"] == target.id
    assert body["role"] == "moderator"
    assert body["suspended"] is False
    # Effective on the user's next request, with the token they already hold.
    assert (await client.get(f"{API}/users/me", headers=target.headers)).json()["role"] == "moderator"
    rows = {item["id"]: item for item in (await directory(client, admin))["items"]}
    assert rows[target.id]["role"] == "moderator"


async def test_promotion_to_admin_and_demotion_act_at_once(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    admin = await staff(client, resources, "head_admin", Role.admin)
    target = await signup(client, "rising")
    assert_problem(await client.get(USERS, headers=target.headers), 403, "insufficient_role")
    assert (await update(client, admin, target.id, {"role": "admin"})).status_code == 200
    assert (await client.get(USERS, headers=target.headers)).status_code == 200
    assert (await update(client, admin, target.id, {"role": "user"})).json()["role"] == "user"
    assert_problem(await client.get(USERS, headers=target.headers), 403, "insufficient_role")


async def test_suspension_ends_access_at_once_and_unsuspension_restores_login(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    admin = await staff(client, resources, "sus_admin", Role.admin)
    target = await signup(client, "rulebreaker")
    second = await login(client, "rulebreaker")
    response = await update(client, admin, target.id, {"suspended": True})
    assert response.status_code == 200
    assert response.json()["suspended"] is True
    # Live access tokens of every session are refused on the very next request.
    for token in (target.access_token, second["access_token"]):
        refused = await client.get(f"{API}/users/me", headers=bearer(token))
        assert_problem(refused, 401, "invalid_token")
        assert refused.headers["www-authenticate"] == "Bearer"
    refreshed = await client.post(f"{API}/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert_problem(refreshed, 401, "invalid_token")
    assert_problem(await login_response(client, "rulebreaker"), 403, "account_suspended")

    response = await update(client, admin, target.id, {"suspended": False})
    assert response.status_code == 200
    assert response.json()["suspended"] is False
    tokens = await login(client, "rulebreaker")
    assert (await client.get(f"{API}/users/me", headers=bearer(tokens["access_token"]))).status_code == 200
    # Sessions ended by the suspension stay ended.
    assert_problem(await client.get(f"{API}/users/me", headers=target.headers), 401)


async def test_role_and_suspension_together(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "both_admin", Role.admin)
    target = await staff(client, resources, "fallen_mod", Role.moderator)
    response = await update(client, admin, target.id, {"role": "user", "suspended": True})
    assert response.status_code == 200
    assert (response.json()["role"], response.json()["suspended"]) == ("user", True)
    entries = (await audit(client, admin))["items"]
    assert [entry["action"] for entry in entries] == ["user.suspended", "user.role_changed"]


async def test_admin_cannot_modify_self(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "lonely_admin", Role.admin)
    for changes in ({"role": "user"}, {"suspended": True}):
        assert_problem(await update(client, admin, admin.id, changes), 400, "cannot_modify_self")
    assert_problem(
        await client.delete(f"{USERS}/{admin.id}", headers=admin.headers), 400, "cannot_modify_self"
    )
    me = await client.get(f"{API}/users/me", headers=admin.headers)
    assert me.status_code == 200
    assert me.json()["role"] == "admin"
    assert (await audit(client, admin))["items"] == []


async def test_unknown_user_is_404(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "seeking_admin", Role.admin)
    for user_id in (MISSING_ID, "not-an-id"):
        assert_problem(await update(client, admin, user_id, {"suspended": True}), 404, "user_not_found")
        response = await client.delete(f"{USERS}/{user_id}", headers=admin.headers)
        assert_problem(response, 404, "user_not_found")
    assert (await audit(client, admin))["items"] == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({}, "body"),
        ({"role": "superuser"}, "body.role"),
        ({"role": None, "suspended": None}, "body"),
        ({"suspended": "maybe"}, "body.suspended"),
        ({"email": "new@example.com"}, "body.email"),
        ({"password_hash": "x", "role": "user"}, "body.password_hash"),
    ],
)
async def test_update_refuses_bad_bodies(
    client: httpx.AsyncClient, resources: Resources, changes: dict[str, Any], field: str
) -> None:
    admin = await staff(client, resources, "strict_admin", Role.admin)
    target = await signup(client, "untouched")
    response = await update(client, admin, target.id, changes)
    assert_problem(response, 422, "validation_error")
    assert field in field_errors(response)
    assert (await client.get(f"{API}/users/me", headers=target.headers)).json()["role"] == "user"


async def test_no_op_update_is_not_audited(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "calm_admin", Role.admin)
    target = await signup(client, "unchanged")
    response = await update(client, admin, target.id, {"role": "user", "suspended": False})
    assert response.status_code == 200
    assert (await audit(client, admin))["items"] == []
    assert (await client.get(f"{API}/users/me", headers=target.headers)).status_code == 200


# --- DELETE /admin/users/{id} -------------------------------------------------------


async def test_delete_user(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "del_admin", Role.admin)
    target = await signup(client, "doomed")
    witness = await signup(client, "witness")
    response = await client.delete(f"{USERS}/{target.id}", headers=admin.headers)
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"
    assert_problem(await client.get(f"{API}/users/me", headers=target.headers), 401)
    assert_problem(
        await client.get(f"{API}/users/{target.id}", headers=witness.headers), 404, "user_not_found"
    )
    assert_problem(await login_response(client, "doomed"), 401, "invalid_credentials")
    assert target.id not in [item["id"] for item in (await directory(client, admin))["items"]]
    again = await client.delete(f"{USERS}/{target.id}", headers=admin.headers)
    assert_problem(again, 404, "user_not_found")


async def test_admin_can_delete_another_admin_and_the_log_keeps_the_name(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    first = await staff(client, resources, "first_admin", Role.admin)
    second = await staff(client, resources, "second_admin", Role.admin)
    target = await signup(client, "victim")
    assert (await update(client, second, target.id, {"suspended": True})).status_code == 200
    assert (await client.delete(f"{USERS}/{second.id}", headers=first.headers)).status_code == 204
    assert_problem(await client.get(USERS, headers=second.headers), 401)
    entries = (await audit(client, first))["items"]
    assert [entry["action"] for entry in entries] == ["user.deleted", "user.suspended"]
    deleted, suspended = entries
    assert (deleted["actor_id"], deleted["target_id"]) == (first.id, second.id)
    # The acting admin is gone; the entry still says who it was.
    assert suspended["actor_id"] is None
    assert suspended["actor_username"] == "second_admin"
    assert suspended["target_id"] == target.id


# --- GET /admin/audit-log -----------------------------------------------------------


async def test_audit_log_records_each_action_newest_first(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    admin = await staff(client, resources, "audit_admin", Role.admin)
    target = await signup(client, "audited")
    other = await signup(client, "erased")
    await update(client, admin, target.id, {"role": "moderator"})
    await update(client, admin, target.id, {"suspended": True})
    await update(client, admin, target.id, {"suspended": False})
    await client.delete(f"{USERS}/{other.id}", headers=admin.headers)
    page = await audit(client, admin)
    entries = page["items"]
    assert page["next_cursor"] is None
    assert [(entry["action"], entry["target_id"]) for entry in entries] == [
        ("user.deleted", other.id),
        ("user.unsuspended", target.id),
        ("user.suspended", target.id),
        ("user.role_changed", target.id),
    ]
    for entry in entries:
        assert set(entry) == {
            "id",
            "actor_id",
            "actor_username",
            "action",
            "target_type",
            "target_id",
            "details",
            "created_at",
        }
        assert entry["actor_id"] == admin.id
        assert entry["actor_username"] == "audit_admin"
        assert entry["target_type"] == "user"
        assert entry["created_at"].endswith("Z")
    times = [entry["created_at"] for entry in entries]
    assert times == sorted(times, reverse=True)
    assert entries[3]["details"] == {"before": "user", "after": "moderator"}
    assert entries[0]["details"] == {"username": "erased"}


async def test_audit_log_is_cursor_paginated(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "paging_admin", Role.admin)
    target = await signup(client, "flipflop")
    for step in range(5):
        await update(client, admin, target.id, {"suspended": step % 2 == 0})
    everything = [entry["id"] for entry in (await audit(client, admin))["items"]]
    assert len(everything) == 5

    seen: list[str] = []
    params: dict[str, str | int] = {"limit": 2}
    while True:
        response = await client.get(AUDIT, params=params, headers=admin.headers)
        assert response.status_code == 200
        page = response.json()
        seen += [entry["id"] for entry in page["items"]]
        if page["next_cursor"] is None:
            assert "link" not in response.headers
            break
        match = re.fullmatch(r'<([^>]+)>; rel="next"', response.headers["link"])
        assert match, response.headers["link"]
        assert httpx.URL(match.group(1)).params["cursor"] == page["next_cursor"]
        params = {"limit": 2, "cursor": page["next_cursor"]}
    assert seen == everything

    assert_problem(
        await client.get(AUDIT, params={"cursor": "nonsense"}, headers=admin.headers), 422, "invalid_cursor"
    )
    too_many = await client.get(AUDIT, params={"limit": 101}, headers=admin.headers)
    assert_problem(too_many, 422, "validation_error")
    assert field_errors(too_many) == {"query.limit"}


async def test_audit_log_walk_is_stable_while_actions_happen(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    admin = await staff(client, resources, "steady_admin", Role.admin)
    target = await signup(client, "toggled")
    for step in range(4):
        await update(client, admin, target.id, {"suspended": step % 2 == 0})
    before = [entry["id"] for entry in (await audit(client, admin))["items"]]
    first = await audit(client, admin, limit=2)
    # New entries arrive between pages; the walk neither repeats nor skips old ones.
    await update(client, admin, target.id, {"role": "moderator"})
    rest = await audit(client, admin, limit=10, cursor=first["next_cursor"])
    walked = [entry["id"] for entry in first["items"] + rest["items"]]
    assert walked == before
