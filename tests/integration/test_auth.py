"""Accounts and authentication through the HTTP API: registration, login, tokens, sessions, e-mail flows.

See docs/api.md#accounts-and-authentication.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import httpx
import pytest

from kith.db.models import Role
from kith.runtime.resources import Resources
from tests.conftest import Mailbox
from tests.helpers import API, PASSWORD, assert_problem, field_errors, login, register, signup, staff

# --- registration -------------------------------------------------------------------


async def test_register_returns_private_view_and_location(client: httpx.AsyncClient) -> None:
    response = await register(client, "Ada_L", email="Ada@Example.COM", display_name="  Ada  ")
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "Ada_L"
    assert body["email"] == "ada@example.com"
    assert body["display_name"] == "Ada"
    assert body["email_verified"] is False
    assert body["role"] == "user"
    assert body["created_at"].endswith("Z")
    assert "password" not in response.text and "hash" not in response.text
    assert response.headers["location"] == f"https://kith.example{API}/users/{body['id']}"
    assert response.headers["cache-control"] == "no-store"


async def test_register_sends_verification_and_welcome_mail(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    await register(client, "grace")
    await resources.jobs.wait_idle()
    subjects = sorted(m["Subject"] for m in mailbox.to("grace@example.com"))
    assert subjects == ["Confirm your e-mail address", "Welcome to Kith"]
    verification = next(m for m in mailbox.to("grace@example.com") if m["Subject"].startswith("Confirm"))
    body = Mailbox.text_of(verification)
    # Links come from the configured public URL, never from the request's Host.
    assert "https://kith.example/" in body and "testserver" not in body


async def test_the_api_call_each_email_names_takes_its_token(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    """Besides the link, each e-mail names the API call that takes its token: that call works."""
    account = await signup(client, "ivy")
    await client.post(f"{API}/auth/password-reset", json={"email": account.email})
    await resources.jobs.wait_idle()
    bodies: dict[str, dict[str, str]] = {
        "verify": {},
        "reset": {"new_password": "another long passphrase"},
    }
    for subject, kind in (("Confirm your e-mail address", "verify"), ("Reset your Kith password", "reset")):
        message = next(m for m in mailbox.to(account.email) if m["Subject"] == subject)
        named = re.search(r"send this token to POST (\S+): (\S+)", Mailbox.text_of(message))
        assert named, Mailbox.text_of(message)
        path, token = named.groups()
        assert path.startswith(f"{API}/auth/")
        response = await client.post(path, json={"token": token, **bodies[kind]})
        assert response.status_code == 204, response.text


async def test_register_links_ignore_hostile_host_header(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    body = {"username": "hosty", "email": "hosty@example.com", "password": PASSWORD}
    await client.post(f"{API}/auth/register", json=body, headers={"Host": "evil.example"})
    await resources.jobs.wait_idle()
    for message in mailbox.to("hosty@example.com"):
        assert "evil.example" not in Mailbox.text_of(message)


async def test_duplicate_username_and_email_are_409_case_insensitively(client: httpx.AsyncClient) -> None:
    assert (await register(client, "alan")).status_code == 201
    assert_problem(await register(client, "ALAN", email="other@example.com"), 409, "username_taken")
    assert_problem(await register(client, "alan2", email="ALAN@example.com"), 409, "email_taken")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"username": "ab"}, "body.username"),
        ({"username": "a" * 31}, "body.username"),
        ({"username": "bad name"}, "body.username"),
        ({"username": "bäd"}, "body.username"),
        ({"email": "not-an-email"}, "body.email"),
        ({"password": "short"}, "body.password"),
        ({"password": "x" * 129}, "body.password"),
        ({"password": "password123"}, "body.password"),
        ({"password": "newcomer1"}, "body.password"),
        ({"password": "newcomer1@example.com"}, "body.password"),
        ({"display_name": "x" * 51}, "body.display_name"),
    ],
)
async def test_register_validation_names_the_field(
    client: httpx.AsyncClient, fields: dict[str, str], field: str
) -> None:
    fields = dict(fields)
    response = await register(client, fields.pop("username", "newcomer1"), **fields)
    assert_problem(response, 422, "validation_error")
    assert field in field_errors(response)


@pytest.mark.parametrize("extra", [{"role": "admin"}, {"id": "x"}, {"email_verified": True}])
async def test_register_rejects_mass_assignment(client: httpx.AsyncClient, extra: dict[str, object]) -> None:
    response = await register(client, "sneaky", **extra)
    assert_problem(response, 422, "validation_error")
    assert f"body.{next(iter(extra))}" in field_errors(response)


async def test_password_is_not_trimmed(client: httpx.AsyncClient) -> None:
    await register(client, "spacey", password="  padded secret  ")
    assert (
        await client.post(f"{API}/auth/login", json={"username": "spacey", "password": "padded secret"})
    ).status_code == 401
    await login(client, "spacey", "  padded secret  ")


# --- login --------------------------------------------------------------------------


async def test_login_by_username_or_email_returns_token_pair(client: httpx.AsyncClient) -> None:
    await register(client, "linus")
    for body in ({"username": "LINUS"}, {"email": "Linus@Example.com"}):
        response = await client.post(f"{API}/auth/login", json={**body, "password": PASSWORD})
        assert response.status_code == 200
        pair = response.json()
        assert pair["token_type"] == "bearer"
        assert pair["expires_in"] == 900
        assert len(pair["refresh_token"]) >= 22
        assert response.headers["cache-control"] == "no-store"
        me = await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
        assert me.json()["username"] == "linus"


async def test_login_needs_exactly_one_identifier(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/auth/login", json={"password": PASSWORD})
    assert_problem(response, 422)
    response = await client.post(
        f"{API}/auth/login", json={"username": "a", "email": "a@example.com", "password": PASSWORD}
    )
    assert_problem(response, 422)


async def test_unknown_user_and_wrong_password_look_the_same(client: httpx.AsyncClient) -> None:
    await register(client, "margaret")

    async def attempt(username: str) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        response = await client.post(
            f"{API}/auth/login", json={"username": username, "password": "wrong password!"}
        )
        return response, time.perf_counter() - started

    # A name no account has, and no other test types.
    nobody = f"nobody_{uuid.uuid4().hex[:12]}"
    wrong, wrong_time = await attempt("margaret")
    unknown, unknown_time = await attempt(nobody)
    for response in (wrong, unknown):
        assert_problem(response, 401, "invalid_credentials")
        assert response.headers["www-authenticate"] == "Bearer"
    wrong_body, unknown_body = wrong.json(), unknown.json()
    del wrong_body["request_id"], unknown_body["request_id"]
    assert wrong_body == unknown_body
    # Both pay for one Argon2 verification; an unknown user is not answered early. The two
    # kinds alternate, so that both see the same load (the hashing threads run at a lower
    # priority, and other tests share the machine).
    wrong_attempts, unknown_attempts = [], []
    for _ in range(3):
        wrong_attempts.append(await attempt("margaret"))
        unknown_attempts.append(await attempt(nobody))
    for response, _ in wrong_attempts + unknown_attempts:
        assert_problem(response, 401, "invalid_credentials")
    wrong_times = [seconds for _, seconds in wrong_attempts] + [wrong_time]
    unknown_times = [seconds for _, seconds in unknown_attempts] + [unknown_time]
    assert min(unknown_times) > 0.4 * min(wrong_times)


async def test_token_endpoint_takes_oauth2_form(client: httpx.AsyncClient) -> None:
    await register(client, "swagger")
    response = await client.post(
        f"{API}/auth/token", data={"username": "swagger@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"
    bad = await client.post(f"{API}/auth/token", data={"username": "swagger", "password": "nope-nope"})
    assert_problem(bad, 401, "invalid_credentials")


async def test_suspended_account_cannot_log_in(client: httpx.AsyncClient, resources: Resources) -> None:
    admin = await staff(client, resources, "root_admin", Role.admin)
    victim = await signup(client, "suspect")
    await client.patch(f"{API}/admin/users/{victim.id}", json={"suspended": True}, headers=admin.headers)
    response = await client.post(f"{API}/auth/login", json={"username": "suspect", "password": PASSWORD})
    assert_problem(response, 403, "account_suspended")


# --- refresh rotation ---------------------------------------------------------------


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{API}/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_and_old_token_stops_working(client: httpx.AsyncClient) -> None:
    account = await signup(client, "rotor")
    first = await refresh(client, account.refresh_token)
    assert first.status_code == 200
    pair = first.json()
    assert pair["refresh_token"] != account.refresh_token
    me = await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert me.status_code == 200
    second = await refresh(client, pair["refresh_token"])
    assert second.status_code == 200


async def test_refresh_reuse_revokes_the_whole_session(client: httpx.AsyncClient) -> None:
    account = await signup(client, "replayer")
    rotated = (await refresh(client, account.refresh_token)).json()
    # The old token comes back: an attacker may hold it. The session dies.
    assert_problem(await refresh(client, account.refresh_token), 401, "invalid_token")
    assert_problem(await refresh(client, rotated["refresh_token"]), 401, "invalid_token")
    me = await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {rotated['access_token']}"})
    assert_problem(me, 401)
    # Other sessions of the same user are untouched.
    other = await login(client, "replayer")
    assert (await refresh(client, other["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_with_one_token_give_one_success(client: httpx.AsyncClient) -> None:
    account = await signup(client, "racer")
    responses = await asyncio.gather(*(refresh(client, account.refresh_token) for _ in range(5)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 401, 401, 401, 401]


async def test_refresh_with_garbage_is_401(client: httpx.AsyncClient) -> None:
    assert_problem(await refresh(client, "not-a-token"), 401, "invalid_token")


async def test_session_lifetime_is_capped_at_30_days(client: httpx.AsyncClient, resources: Resources) -> None:
    account = await signup(client, "elder")
    resources.clock.advance(days=29)
    pair = (await refresh(client, account.refresh_token)).json()
    resources.clock.advance(days=1, seconds=1)
    assert_problem(await refresh(client, pair["refresh_token"]), 401, "invalid_token")


# --- logout -------------------------------------------------------------------------


async def test_logout_ends_current_session_only(client: httpx.AsyncClient) -> None:
    account = await signup(client, "leaver")
    other = await login(client, "leaver")
    assert (await client.post(f"{API}/auth/logout", headers=account.headers)).status_code == 204
    assert_problem(await client.get(f"{API}/users/me", headers=account.headers), 401)
    assert_problem(await refresh(client, account.refresh_token), 401)
    other_headers = {"Authorization": f"Bearer {other['access_token']}"}
    assert (await client.get(f"{API}/users/me", headers=other_headers)).status_code == 200


async def test_logout_all_ends_every_session(client: httpx.AsyncClient) -> None:
    account = await signup(client, "exodus")
    other = await login(client, "exodus")
    assert (await client.post(f"{API}/auth/logout-all", headers=account.headers)).status_code == 204
    for token in (account.access_token, other["access_token"]):
        assert_problem(await client.get(f"{API}/users/me", headers={"Authorization": f"Bearer {token}"}), 401)
    assert_problem(await refresh(client, other["refresh_token"]), 401)


async def test_logout_needs_authentication(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/auth/logout")
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


# --- e-mail verification --------------------------------------------------------------


async def test_verify_email_with_mailed_token(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    account = await signup(client, "verity")
    await resources.jobs.wait_idle()
    token = mailbox.token(account.email, "Confirm your e-mail address")
    assert (await client.post(f"{API}/auth/verify-email", json={"token": token})).status_code == 204
    me = (await client.get(f"{API}/users/me", headers=account.headers)).json()
    assert me["email_verified"] is True
    # Single use.
    assert_problem(await client.post(f"{API}/auth/verify-email", json={"token": token}), 400, "invalid_token")
    assert_problem(
        await client.post(f"{API}/auth/verify-email/resend", headers=account.headers), 409, "already_verified"
    )


async def test_resend_replaces_the_old_link(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    account = await signup(client, "resender")
    await resources.jobs.wait_idle()
    old = mailbox.token(account.email, "Confirm your e-mail address")
    assert (await client.post(f"{API}/auth/verify-email/resend", headers=account.headers)).status_code == 202
    await resources.jobs.wait_idle()
    new = mailbox.token(account.email, "Confirm your e-mail address")
    assert new != old
    assert_problem(await client.post(f"{API}/auth/verify-email", json={"token": old}), 400, "invalid_token")
    assert (await client.post(f"{API}/auth/verify-email", json={"token": new})).status_code == 204


async def test_verification_token_expires_after_7_days(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    account = await signup(client, "latecomer")
    await resources.jobs.wait_idle()
    token = mailbox.token(account.email, "Confirm your e-mail address")
    resources.clock.advance(days=7, seconds=1)
    assert_problem(await client.post(f"{API}/auth/verify-email", json={"token": token}), 400, "invalid_token")


# --- password reset -----------------------------------------------------------------


async def test_password_reset_flow_ends_all_sessions(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    account = await signup(client, "forgetful")
    response = await client.post(f"{API}/auth/password-reset", json={"email": "FORGETFUL@example.com"})
    assert response.status_code == 202
    await resources.jobs.wait_idle()
    token = mailbox.token(account.email, "Reset your Kith password")
    confirm = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": "a brand new secret"}
    )
    assert confirm.status_code == 204
    assert_problem(await client.get(f"{API}/users/me", headers=account.headers), 401)
    assert_problem(await refresh(client, account.refresh_token), 401)
    await login(client, "forgetful", "a brand new secret")
    again = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": "another new secret"}
    )
    assert_problem(again, 400, "invalid_token")


async def test_password_reset_for_unknown_email_is_202_and_sends_nothing(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    response = await client.post(f"{API}/auth/password-reset", json={"email": "ghost@example.com"})
    assert response.status_code == 202
    await resources.jobs.wait_idle()
    assert mailbox.to("ghost@example.com") == []


async def test_password_reset_token_expires_after_an_hour(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    account = await signup(client, "slowpoke")
    await client.post(f"{API}/auth/password-reset", json={"email": account.email})
    await resources.jobs.wait_idle()
    token = mailbox.token(account.email, "Reset your Kith password")
    resources.clock.advance(minutes=61)
    response = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": "a brand new secret"}
    )
    assert_problem(response, 400, "invalid_token")


async def test_password_reset_confirm_applies_password_rules(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    account = await signup(client, "ruleful")
    await client.post(f"{API}/auth/password-reset", json={"email": account.email})
    await resources.jobs.wait_idle()
    token = mailbox.token(account.email, "Reset your Kith password")
    same_as_name = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": "RuleFul_"[:-1]}
    )
    assert_problem(same_as_name, 422, "validation_error")
    assert field_errors(same_as_name) == {"body.new_password"}
    # The refused request rolled back: the token was not used up.
    ok = await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": "a good new secret"}
    )
    assert ok.status_code == 204


@pytest.mark.parametrize("spelling", ["ＡＤＡ@example.com", "ada@example。com", "ａda@example．com"])
async def test_an_address_has_one_spelling_for_uniqueness_and_login(
    client: httpx.AsyncClient, spelling: str
) -> None:
    await signup(client, "ada", email="ada@example.com")
    taken = await register(client, "ada2", email=spelling)
    assert_problem(taken, 409, "email_taken")
    logged_in = await client.post(f"{API}/auth/login", json={"email": spelling, "password": PASSWORD})
    assert logged_in.status_code == 200, logged_in.text
