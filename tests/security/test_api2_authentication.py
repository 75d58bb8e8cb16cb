"""OWASP API2:2023 Broken Authentication.

One forged or stale property at a time is tested on `/users/me` in
tests/integration/test_jwt.py, and refresh-token rotation and reuse in
tests/integration/test_auth.py. Here: every forgery against every secured route, each
kind of token used where another is expected, and account enumeration by status, body,
work done and time.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from fastapi import FastAPI
from sqlalchemy import event

from kith.runtime.resources import Resources
from tests.conftest import Mailbox
from tests.helpers import API, PASSWORD, Account, assert_error, assert_problem, signup
from tests.posting import member, set_suspended
from tests.security.inventory import required_access, served_routes


def _forgeries(resources: Resources, victim: Account, other: Account) -> dict[str, str]:
    """Tokens that must not authenticate anyone, built from the victim's real one."""
    key = resources.settings.signing_key()
    real: dict[str, Any] = jwt.decode(victim.access_token, options={"verify_signature": False})
    now = datetime.now(UTC)

    def signed(
        claims: dict[str, Any], *, algorithm: str = "HS256", signing_key: str = key, **header: Any
    ) -> str:
        return jwt.encode(claims, signing_key, algorithm=algorithm, headers={"typ": "at+jwt", **header})

    head, _, signature = victim.access_token.split(".")
    unsigned = jwt.encode(real, None, algorithm="none", headers={"typ": "at+jwt"})
    return {
        "alg none": unsigned,
        "wrong key": signed(real, signing_key="k" * 48),
        "HS512 with the real key": signed(real, algorithm="HS512"),
        "other user's subject": signed({**real, "sub": other.id}),
        "victim's signature on another payload": ".".join(
            [head, jwt.encode({**real, "sub": other.id}, key, algorithm="HS256").split(".")[1], signature]
        ),
        "plain JWT type": jwt.encode(real, key, algorithm="HS256", headers={"typ": "JWT"}),
        "expired": signed({**real, "exp": int((now - timedelta(seconds=5)).timestamp())}),
        "made-up session": signed({**real, "sid": str(uuid.uuid4())}),
        # Signed with what a kid path would load (/etc/hostname, say); kid is never read.
        "kid naming a file": signed(real, signing_key="kith-host\n" * 4, kid="../../../../etc/hostname"),
        "refresh token as bearer": victim.refresh_token,
    }


async def test_forged_tokens_are_refused_by_every_secured_route(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    victim, other = await member(resources, "victim"), await member(resources, "other")
    forgeries = _forgeries(resources, victim, other)
    assert (await client.get(f"{API}/users/me", headers=victim.headers)).status_code == 200
    routes = [route for route in served_routes(app) if required_access(route) != "none"]
    assert len(routes) > 40
    for route in routes:
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), route.path)
        for name, token in forgeries.items():
            response = await client.request(
                route.method, url, json={}, headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401, (route.method, route.path, name, response.status_code)
            assert_error(response, 401, "invalid_token")
            assert response.headers["www-authenticate"] == "Bearer", (route.path, name)


async def test_each_token_works_only_for_its_own_purpose(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    ada = await signup(client, "ada")
    key = await client.post(f"{API}/users/me/api-keys", json={"name": "k"}, headers=ada.headers)
    api_key = key.json()["key"]
    await client.post(f"{API}/auth/password-reset", json={"email": ada.email})
    await resources.jobs.wait_idle()
    texts = {message["Subject"]: Mailbox.text_of(message) for message in mailbox.to(ada.email)}
    verification = re.search(r"token=([\w-]+)", texts["Confirm your e-mail address"])
    reset = re.search(r"token=([\w-]+)", texts["Reset your Kith password"])
    assert verification is not None and reset is not None
    me = f"{API}/users/me"
    for token in (ada.refresh_token, api_key, verification[1], reset[1]):
        assert_problem(
            await client.get(me, headers={"Authorization": f"Bearer {token}"}), 401, "invalid_token"
        )
    for token in (ada.access_token, ada.refresh_token, verification[1]):
        assert_problem(await client.get(me, headers={"X-API-Key": token}), 401, "invalid_token")
    for token in (ada.access_token, api_key, verification[1], reset[1]):
        response = await client.post(f"{API}/auth/refresh", json={"refresh_token": token})
        assert_problem(response, 401, "invalid_token")
    reset_as_verification = await client.post(f"{API}/auth/verify-email", json={"token": reset[1]})
    assert_problem(reset_as_verification, 400, "invalid_token")
    verification_as_reset = await client.post(
        f"{API}/auth/password-reset/confirm",
        json={"token": verification[1], "new_password": "a new passphrase"},
    )
    assert_problem(verification_as_reset, 400, "invalid_token")
    # None of it cost the account anything.
    assert (await client.get(me, headers=ada.headers)).status_code == 200


def _comparable(response: httpx.Response) -> tuple[int, dict[str, Any], str | None]:
    body = response.json()
    body.pop("request_id", None)
    return response.status_code, body, response.headers.get("www-authenticate")


async def test_failed_logins_look_the_same_whether_the_account_exists(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await member(resources, "ada")
    suspended = await member(resources, "sue")
    await set_suspended(resources, suspended)
    attempts = [
        {"username": "nobody_here", "password": "wrong password"},
        {"username": "ada", "password": "wrong password"},
        {"email": "ada@example.com", "password": "wrong password"},
        {"username": "sue", "password": "wrong password"},  # suspension shows only after the right one
        {"username": "ADA", "password": "wrong password"},
    ]
    answers = {str(_comparable(await client.post(f"{API}/auth/login", json=body))) for body in attempts}
    assert len(answers) == 1, answers
    forms = [
        {"username": body.get("username") or body["email"], "password": body["password"]} for body in attempts
    ]
    token_answers = {str(_comparable(await client.post(f"{API}/auth/token", data=form))) for form in forms}
    assert len(token_answers) == 1, token_answers


@contextmanager
def statements_of_this_task(resources: Resources) -> Iterator[list[str]]:
    """SQL run by the calling task (the request, through the in-process transport), not by jobs."""
    task = asyncio.current_task()
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if asyncio.current_task() is task:
            seen.append(re.sub(r"\s+", " ", statement.split(" WHERE ")[0]))

    engine = resources.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_password_reset_does_the_same_work_for_unknown_addresses(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """It looked the account up and wrote its token inside the request, a few milliseconds
    that unknown addresses did not cost; that work now happens in the job, for both."""
    ada = await member(resources, "ada")
    traces, answers = [], []
    for email in (ada.email, "nobody@example.com", ada.email.upper()):
        with statements_of_this_task(resources) as statements:
            response = await client.post(f"{API}/auth/password-reset", json={"email": email})
        await resources.jobs.wait_idle()
        traces.append(statements)
        answers.append((response.status_code, response.content))
    assert traces[0] == traces[1] == traces[2]
    assert {status for status, _ in answers} == {202}
    assert len({content for _, content in answers}) == 1


async def _seconds(client: httpx.AsyncClient, resources: Resources, path: str, body: dict[str, str]) -> float:
    started = time.perf_counter()
    await client.post(path, json=body)
    elapsed = time.perf_counter() - started
    await resources.jobs.wait_idle()
    return elapsed


async def test_unknown_accounts_cost_about_the_same_time(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """The median ratio of paired logins, one of each kind back to back (which goes first
    alternates): load from other processes on this shared machine changes more slowly than
    a pair takes, so it falls on both halves of a pair alike. The unknown account verifies
    a dummy Argon2 hash, so the two are within noise."""
    await member(resources, "ada")
    known = {"username": "ada", "password": "not " + PASSWORD}
    unknown = {"username": "nobody_here", "password": "not " + PASSWORD}
    ratios = []
    for pair in range(18):
        if pair % 2:
            second = await _seconds(client, resources, f"{API}/auth/login", unknown)
            first = await _seconds(client, resources, f"{API}/auth/login", known)
        else:
            first = await _seconds(client, resources, f"{API}/auth/login", known)
            second = await _seconds(client, resources, f"{API}/auth/login", unknown)
        ratios.append(first / second)
    assert 0.5 < statistics.median(ratios) < 2.0, ratios
