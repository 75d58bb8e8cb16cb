"""Rate limits (docs/api.md#conventions): their headers, their keys, and what happens when Redis fails.

The clock that the limits read is frozen at the start of a day (so every window, of a
minute or of a day, starts with the test) and moves only with the application clock
(`resources.clock.advance`): no test sleeps through a window, and none depends on when
it runs.
"""

from __future__ import annotations

import io
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import limits.aio.storage.memory
import limits.aio.strategies
import pytest
from fastapi import FastAPI
from PIL import Image

import kith.runtime.limits
from kith.core.clock import Clock
from kith.core.config import Settings
from kith.core.metrics import RATE_LIMIT_REJECTIONS
from kith.db.models import Role
from kith.main import create_app
from kith.runtime.resources import Resources
from tests.conftest import REDIS_URL, redis_available
from tests.helpers import API, MEDIA, PASSWORD, Account, assert_error
from tests.posting import member

PROXY = "127.0.0.1"  # httpx's ASGI transport connects from here


class _ClockTime:
    """Stands in for the `time` module where limits read it: frozen, moved by a Clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.start = time.time() // 86400 * 86400 + 1

    def time(self) -> float:
        return self.start + self.clock.offset.total_seconds()


@asynccontextmanager
async def limited_app(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Resources]]:
    """An app with rate limits on (`overrides` change settings), and a client for it."""
    changes: dict[str, Any] = {"rate_limits_enabled": True, "trusted_proxies": [PROXY], **overrides}
    application: FastAPI = create_app(settings.model_copy(update=changes))
    async with application.router.lifespan_context(application):
        resources: Resources = application.state.resources
        shim = _ClockTime(resources.clock)
        monkeypatch.setattr(limits.aio.storage.memory, "time", shim)
        monkeypatch.setattr(limits.aio.strategies, "time", shim)
        monkeypatch.setattr(kith.runtime.limits, "wall_time", shim.time)
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client, resources


def count_password_checks(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """A list that grows by one each time a password is checked (an Argon2 hash)."""
    checks: list[None] = []
    verify = resources.passwords.verify

    async def counting_verify(*args: Any, **kwargs: Any) -> Any:
        checks.append(None)
        return await verify(*args, **kwargs)

    monkeypatch.setattr(resources.passwords, "verify", counting_verify)
    return checks


def from_ip(address: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    return {**(headers or {}), "X-Forwarded-For": address}


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def assert_limited(response: httpx.Response, limit: int) -> None:
    assert_error(response, 429, "rate_limited")
    assert "Retry-After" in response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    assert int(response.headers["ratelimit-reset"]) >= 1


def assert_counted(response: httpx.Response, limit: int, remaining: int) -> None:
    assert response.headers["ratelimit-limit"] == str(limit), response.headers
    assert response.headers["ratelimit-remaining"] == str(remaining)
    assert int(response.headers["ratelimit-reset"]) >= 0


# --- each limit: at the limit OK, over it 429, OK again after the window -----------------

Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def _setup_accounts(resources: Resources) -> dict[str, Account]:
    names = ("ada", "bob", "cy", "dee", "eve")
    return {name: await member(resources, name) for name in names}


def _cases(accounts: dict[str, Account], post_id: str) -> dict[str, tuple[int, Send]]:
    """For each named limit: the success status and one request that counts against it."""
    ada = accounts["ada"]
    others = [accounts[name] for name in ("bob", "cy", "dee", "eve")]

    async def general(client: httpx.AsyncClient, i: int) -> httpx.Response:
        return await client.get(f"{API}/users/me", headers=ada.headers)

    async def login(client: httpx.AsyncClient, i: int) -> httpx.Response:
        return await client.post(f"{API}/auth/login", json={"username": "ada", "password": PASSWORD})

    async def token(client: httpx.AsyncClient, i: int) -> httpx.Response:
        form = {"username": "ada", "password": PASSWORD, "grant_type": "password"}
        return await client.post(f"{API}/auth/token", data=form)

    async def register(client: httpx.AsyncClient, i: int) -> httpx.Response:
        name = f"new{uuid.uuid4().hex[:8]}"
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        return await client.post(f"{API}/auth/register", json=body)

    async def reset(client: httpx.AsyncClient, i: int) -> httpx.Response:
        return await client.post(f"{API}/auth/password-reset", json={"email": "ada@example.com"})

    async def post(client: httpx.AsyncClient, i: int) -> httpx.Response:
        return await client.post(f"{API}/posts", json={"content": f"post {i}"}, headers=ada.headers)

    async def comment(client: httpx.AsyncClient, i: int) -> httpx.Response:
        return await client.post(
            f"{API}/posts/{post_id}/comments", json={"content": f"comment {i}"}, headers=ada.headers
        )

    async def friend_request(client: httpx.AsyncClient, i: int) -> httpx.Response:
        receiver = others[i % len(others)]
        response = await client.post(
            f"{API}/friend-requests", json={"receiver_id": receiver.id}, headers=ada.headers
        )
        if response.status_code == 201:  # cancel it, so the same receiver can be asked again
            await client.delete(f"{API}/friend-requests/{response.json()['id']}", headers=ada.headers)
        return response

    async def upload(client: httpx.AsyncClient, i: int) -> httpx.Response:
        files = {"file": ("a.png", png(), "image/png")}
        return await client.post(f"{API}/media", files=files, headers=ada.headers)

    return {
        "general": (200, general),
        "login": (200, login),
        "token": (200, token),
        "register": (201, register),
        "password_reset": (202, reset),
        "posts": (201, post),
        "comments": (201, comment),
        "friend_requests": (201, friend_request),
        "media_uploads": (201, upload),
    }


# name -> (setting, limit as configured, how far to move the clock to leave the window)
LIMITS: dict[str, tuple[str, str, dict[str, float]]] = {
    "general": ("rate_limit_general", "3/5 minutes", {"minutes": 10}),
    "login": ("rate_limit_login", "3/minute", {"seconds": 61}),
    "token": ("rate_limit_login", "3/minute", {"seconds": 61}),
    "register": ("rate_limit_register", "3/hour", {"hours": 1, "seconds": 1}),
    "password_reset": ("rate_limit_password_reset", "3/30 minutes", {"minutes": 31}),
    "posts": ("rate_limit_posts", "3/minute", {"minutes": 2}),
    "comments": ("rate_limit_comments", "3/minute", {"minutes": 2}),
    "friend_requests": ("rate_limit_friend_requests", "3/day", {"days": 2}),
    "media_uploads": ("rate_limit_media_uploads", "3/hour", {"hours": 2}),
}


@pytest.mark.parametrize("name", list(LIMITS))
async def test_each_limit_allows_its_count_then_429_then_allows_again_after_the_window(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    setting, value, window = LIMITS[name]
    # The general limit stays out of the way of the others (and they of it).
    overrides = (
        {setting: value} if name == "general" else {setting: value, "rate_limit_general": "1000/minute"}
    )
    async with limited_app(settings, monkeypatch, **overrides) as (client, resources):
        accounts = await _setup_accounts(resources)
        post = await client.post(
            f"{API}/posts",
            json={"content": "target", "visibility": "public"},
            headers=accounts["bob"].headers,
        )
        ok, send = _cases(accounts, post.json()["id"])[name]
        for i in range(3):
            response = await send(client, i)
            assert response.status_code == ok, response.text
            assert_counted(response, 3, 2 - i)
        refused = await send(client, 3)
        assert_limited(refused, 3)
        resources.clock.advance(**window)
        again = await send(client, 4)
        assert again.status_code == ok, again.text
        assert_counted(again, 3, 2)


async def test_default_limits_are_the_contracts() -> None:
    defaults = Settings(_env_file=None)
    assert defaults.rate_limits_enabled
    assert (defaults.rate_limit_general, defaults.rate_limit_login) == ("300/5 minutes", "10/minute")
    assert (defaults.rate_limit_login_failures, defaults.rate_limit_login_failures_account) == (
        "5/15 minutes",
        "100/hour",
    )
    assert (defaults.rate_limit_register, defaults.rate_limit_password_reset) == ("5/hour", "5/30 minutes")
    assert (defaults.rate_limit_posts, defaults.rate_limit_comments) == ("30/minute", "60/minute")
    assert (defaults.rate_limit_friend_requests, defaults.rate_limit_media_uploads) == ("50/day", "30/hour")
    assert defaults.rate_limit_moderator_factor == 2


def test_a_malformed_limit_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="rate_limit_posts"):
        Settings(rate_limit_posts="thirty a minute", _env_file=None)
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings(trusted_proxies="10.0.0.0/8,not-an-ip", _env_file=None)


async def test_an_empty_setting_switches_one_limit_off(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch, rate_limit_posts="", rate_limit_general="100/minute") as (
        client,
        resources,
    ):
        ada = await member(resources, "ada")
        for i in range(40):
            response = await client.post(f"{API}/posts", json={"content": f"p{i}"}, headers=ada.headers)
            assert response.status_code == 201
        # Still limited by the general limit, whose headers it carries.
        assert_counted(response, 100, 60)


# --- the headers and the problem ---------------------------------------------------------


async def test_the_headers_show_the_limit_closest_to_running_out(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(
        settings, monkeypatch, rate_limit_general="10/minute", rate_limit_posts="2/minute"
    ) as (
        client,
        resources,
    ):
        ada = await member(resources, "ada")
        first = await client.post(f"{API}/posts", json={"content": "one"}, headers=ada.headers)
        assert_counted(first, 2, 1)  # the posts limit, not the general one (9 left)
        read = await client.get(f"{API}/users/me", headers=ada.headers)
        assert_counted(read, 10, 8)
        await client.post(f"{API}/posts", json={"content": "two"}, headers=ada.headers)
        refused = await client.post(f"{API}/posts", json={"content": "three"}, headers=ada.headers)
        assert_limited(refused, 2)
        # Rejections are counted for the metrics, by limit.
        assert RATE_LIMIT_REJECTIONS.labels(limit="posts")._value.get() >= 1


async def test_a_429_from_the_general_limit_is_a_full_problem_with_every_header(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch, rate_limit_general="2/minute") as (client, _resources):
        for _ in range(2):
            assert (await client.get(f"{API}/users/me")).status_code == 401
        refused = await client.get(f"{API}/users/me", headers={"X-Request-ID": "my-request-1"})
        assert_limited(refused, 2)
        assert refused.headers["x-request-id"] == "my-request-1"
        assert refused.headers["x-content-type-options"] == "nosniff"
        assert refused.headers["cache-control"] == "no-store"


async def test_health_docs_and_media_files_are_not_counted(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch, rate_limit_general="2/minute") as (client, _resources):
        for _ in range(5):
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get(f"{MEDIA}/{'a' * 32}.png")).status_code == 404
            assert (await client.options(f"{API}/posts")).status_code != 429
        assert (await client.get(f"{API}/users/me")).headers["ratelimit-remaining"] == "1"


async def test_the_mastodon_compatible_api_shares_the_general_limit(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch, rate_limit_general="3/minute") as (client, _resources):
        first = await client.get("/api/v1/instance")
        assert first.headers["ratelimit-remaining"] == "2"
        assert (await client.get("/api/v2/instance")).headers["ratelimit-remaining"] == "1"
        own = await client.get(f"{API}/users/me")
        assert own.headers["ratelimit-remaining"] == "0"
        # Mastodon's names for the same limit, on Mastodon's paths only.
        assert not any(name.startswith("x-ratelimit") for name in own.headers)
        refused = await client.get("/api/v1/instance")
        assert_limited(refused, 3)
        for response, remaining in ((first, "2"), (refused, "0")):
            assert response.headers["x-ratelimit-limit"] == "3"
            assert response.headers["x-ratelimit-remaining"] == remaining
            # The reset as a time (UTC, milliseconds), as far ahead as `RateLimit-Reset` says.
            reset = response.headers["x-ratelimit-reset"]
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", reset), reset
            ahead = datetime.fromisoformat(reset) - datetime.fromtimestamp(
                kith.runtime.limits.wall_time(), UTC
            )
            assert abs(ahead.total_seconds() - int(response.headers["ratelimit-reset"])) <= 1
        # NodeInfo, like the health checks, is not part of an API: crawlers are not counted.
        assert (await client.get("/.well-known/nodeinfo")).status_code == 200
        assert (await client.get("/nodeinfo/2.1")).status_code == 200


async def test_switched_off_nothing_is_limited_or_announced(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(
        settings, monkeypatch, rate_limits_enabled=False, rate_limit_general="2/minute"
    ) as (
        client,
        _resources,
    ):
        for _ in range(5):
            response = await client.post(
                f"{API}/auth/login", json={"username": "nobody", "password": "x" * 8}
            )
            assert response.status_code == 401
            assert "ratelimit-limit" not in response.headers


# --- who is counted ---------------------------------------------------------------------


async def test_anonymous_requests_count_per_ip_and_ipv6_per_64(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch, rate_limit_general="2/minute") as (client, _resources):

        async def status(address: str) -> int:
            return (await client.get(f"{API}/users/me", headers=from_ip(address))).status_code

        assert [await status("203.0.113.1"), await status("203.0.113.1")] == [401, 401]
        assert await status("203.0.113.1") == 429
        assert await status("203.0.113.2") == 401  # another address has its own budget
        # Addresses in one /64 share a budget; another /64 does not.
        assert [await status("2001:db8:1:1::1"), await status("2001:db8:1:1:ffff::2")] == [401, 401]
        assert await status("2001:db8:1:1::abcd") == 429
        assert await status("2001:db8:1:2::1") == 401


async def test_x_forwarded_for_counts_only_from_a_trusted_proxy(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(
        settings, monkeypatch, rate_limit_general="2/minute", trusted_proxies=["10.0.0.0/8"]
    ) as (
        client,
        _resources,
    ):
        # The peer (127.0.0.1) is not a trusted proxy: a made-up header changes nothing.
        for address in ("198.51.100.1", "198.51.100.2"):
            assert (await client.get(f"{API}/users/me", headers=from_ip(address))).status_code == 401
        assert (await client.get(f"{API}/users/me", headers=from_ip("198.51.100.3"))).status_code == 429

    async with limited_app(
        settings, monkeypatch, rate_limit_general="2/minute", trusted_proxies=["127.0.0.1"]
    ) as (
        client,
        _resources,
    ):
        # Behind a trusted proxy, the client is the right-most address the proxy saw;
        # whatever the client wrote to the left of it is not believed.
        spoofed = ["1.1.1.1, 198.51.100.9", "2.2.2.2, 198.51.100.9"]
        assert [(await client.get(f"{API}/users/me", headers=from_ip(h))).status_code for h in spoofed] == [
            401,
            401,
        ]
        third = await client.get(f"{API}/users/me", headers=from_ip("3.3.3.3, 198.51.100.9"))
        assert third.status_code == 429


async def test_users_are_counted_apart_from_their_address_and_from_each_other(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch, rate_limit_general="2/minute") as (client, resources):
        ada, bob = await member(resources, "ada"), await member(resources, "bob")
        for _ in range(2):
            assert (await client.get(f"{API}/users/me", headers=ada.headers)).status_code == 200
        assert (await client.get(f"{API}/users/me", headers=ada.headers)).status_code == 429
        assert (await client.get(f"{API}/users/me", headers=bob.headers)).status_code == 200
        # A forged token is anonymous: it counts against the address, not against ada.
        forged = {"Authorization": "Bearer " + ada.access_token[:-4] + "AAAA"}
        assert (await client.get(f"{API}/users/me", headers=forged)).status_code == 401


async def test_api_keys_count_against_their_owner(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch, rate_limit_general="3/minute") as (client, resources):
        ada = await member(resources, "ada")
        created = await client.post(
            f"{API}/users/me/api-keys", json={"name": "script", "scopes": ["read"]}, headers=ada.headers
        )
        assert created.status_code == 201
        key = {"X-API-Key": created.json()["key"]}
        assert (await client.get(f"{API}/users/me", headers=ada.headers)).status_code == 200
        # The key's request is ada's third (creating the key, reading with the token, this).
        with_key = await client.get(f"{API}/users/me", headers=key)
        assert with_key.status_code == 200
        assert_counted(with_key, 3, 0)
        assert (await client.get(f"{API}/users/me", headers=key)).status_code == 429
        assert (await client.get(f"{API}/users/me", headers=ada.headers)).status_code == 429


async def test_moderators_get_twice_the_budget_and_admins_none(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(
        settings, monkeypatch, rate_limit_general="100/minute", rate_limit_posts="2/minute"
    ) as (
        client,
        resources,
    ):
        moderator = await member(resources, "mod", Role.moderator)
        admin = await member(resources, "root", Role.admin)
        statuses = [
            (
                await client.post(f"{API}/posts", json={"content": f"m{i}"}, headers=moderator.headers)
            ).status_code
            for i in range(5)
        ]
        assert statuses == [201, 201, 201, 201, 429]
        for i in range(10):
            response = await client.post(f"{API}/posts", json={"content": f"a{i}"}, headers=admin.headers)
            assert response.status_code == 201
            assert "ratelimit-limit" not in response.headers or response.headers["ratelimit-limit"] == "100"


async def test_an_access_token_names_the_role_so_limits_read_no_database(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(
        settings, monkeypatch, rate_limit_general="100/minute", rate_limit_posts="2/minute"
    ) as (client, resources):
        moderator = await member(resources, "tokenmod", Role.moderator)

        async def no_lookup(*args: object) -> None:
            raise AssertionError("the role came from the database, not the token")

        monkeypatch.setattr(resources.limiter.roles, "role_of", no_lookup)
        statuses = [
            (
                await client.post(f"{API}/posts", json={"content": f"t{i}"}, headers=moderator.headers)
            ).status_code
            for i in range(5)
        ]
        # Twice the budget: the moderator's role, read from the token.
        assert statuses == [201, 201, 201, 201, 429]


async def test_path_variants_do_not_escape_the_login_limit(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(
        settings, monkeypatch, rate_limit_login="2/minute", rate_limit_general="100/minute"
    ) as (
        client,
        resources,
    ):
        await member(resources, "ada")
        body = {"username": "ada", "password": PASSWORD}
        for _ in range(2):
            assert (await client.post(f"{API}/auth/login", json=body)).status_code == 200
        variants = [
            f"{API}/auth/login",
            f"{API}/auth/login?next=1",
            f"{API}/auth/login/",
            f"{API}/auth//login",
            f"{API}//auth/login",
            "/API/V1/AUTH/LOGIN",
            f"{API}/Auth/Login",
            f"{API}/auth/login%2F",
            f"{API}/auth/./login",
        ]
        for path in variants:
            response = await client.post(path, json=body)
            assert response.status_code != 200, path
            assert "access_token" not in response.text, path
        assert (await client.post(f"{API}/auth/login?x=1", json=body)).status_code == 429


# --- failed logins ------------------------------------------------------------------------


async def test_failed_logins_lock_one_account_from_one_address_only(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch) as (client, resources):
        await member(resources, "ada")
        wrong = {"username": "ada", "password": "not the password"}
        right = {"username": "ada", "password": PASSWORD}
        attacker = from_ip("198.51.100.66")
        for _ in range(5):
            assert (await client.post(f"{API}/auth/login", json=wrong, headers=attacker)).status_code == 401
        # The sixth try from there is refused before the password is looked at, even the right one.
        assert_limited(await client.post(f"{API}/auth/login", json=right, headers=attacker), 5)
        # By e-mail too: it is the same account.
        by_email = {"email": "ada@example.com", "password": PASSWORD}
        assert (await client.post(f"{API}/auth/login", json=by_email, headers=attacker)).status_code == 429
        # Ada, from her own address, is not locked out.
        assert (
            await client.post(f"{API}/auth/login", json=right, headers=from_ip("192.0.2.10"))
        ).status_code == 200
        resources.clock.advance(minutes=15, seconds=1)
        assert (await client.post(f"{API}/auth/login", json=right, headers=attacker)).status_code == 200


async def test_failures_per_account_add_up_across_addresses(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch, rate_limit_login_failures_account="8/hour") as (
        client,
        resources,
    ):
        await member(resources, "ada")
        wrong = {"username": "ada", "password": "not the password"}
        for i in range(8):
            response = await client.post(f"{API}/auth/login", json=wrong, headers=from_ip(f"198.51.100.{i}"))
            assert response.status_code == 401
        refused = await client.post(f"{API}/auth/login", json=wrong, headers=from_ip("198.51.100.200"))
        assert_limited(refused, 8)
        resources.clock.advance(hours=1, seconds=1)
        right = {"username": "ada", "password": PASSWORD}
        assert (
            await client.post(f"{API}/auth/login", json=right, headers=from_ip("192.0.2.1"))
        ).status_code == 200


async def test_unknown_accounts_are_throttled_like_known_ones(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch) as (client, resources):
        await member(resources, "ada")
        answers = {}
        for name, address in (("ada", "198.51.100.1"), ("nobody", "198.51.100.2")):
            body = {"username": name, "password": "not the password"}
            statuses = [
                (await client.post(f"{API}/auth/login", json=body, headers=from_ip(address))).status_code
                for _ in range(6)
            ]
            answers[name] = statuses
        assert answers["ada"] == answers["nobody"] == [401] * 5 + [429]


async def test_a_spent_failure_budget_costs_no_password_hash(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch, rate_limit_login_failures="2/15 minutes") as (
        client,
        resources,
    ):
        await member(resources, "ada")
        hashes = count_password_checks(resources, monkeypatch)
        wrong = {"username": "ada", "password": "not the password"}
        for _ in range(2):
            await client.post(f"{API}/auth/login", json=wrong)
        assert len(hashes) == 2
        for _ in range(3):
            assert (await client.post(f"{API}/auth/login", json=wrong)).status_code == 429
        assert len(hashes) == 2


async def test_an_upload_over_the_limit_is_refused_before_its_body_is_read(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch, rate_limit_media_uploads="1/hour") as (client, resources):
        ada = await member(resources, "ada")
        files = {"file": ("a.png", png(), "image/png")}
        assert (await client.post(f"{API}/media", files=files, headers=ada.headers)).status_code == 201
        # Not an image at all: had it been read, this would be 415.
        junk = {"file": ("a.png", b"not an image" * 1000, "image/png")}
        assert_limited(await client.post(f"{API}/media", files=junk, headers=ada.headers), 1)


async def test_the_reset_limit_counts_per_address_whether_or_not_it_has_an_account(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch, rate_limit_password_reset="2/30 minutes") as (
        client,
        _resources,
    ):
        for email in ("Someone@Example.com", "someone@example.com "):
            assert (await client.post(f"{API}/auth/password-reset", json={"email": email})).status_code == 202
        third = await client.post(f"{API}/auth/password-reset", json={"email": "SOMEONE@example.com"})
        assert_limited(third, 2)
        other = await client.post(f"{API}/auth/password-reset", json={"email": "other@example.com"})
        assert other.status_code == 202


@pytest.mark.parametrize(
    "spelling",
    [
        "ＳＯＭＥＯＮＥ@example.com",
        "someone@example。com",
        "someone@example．com",
        "some\uff4fne@EXAMPLE.COM",
    ],
)
async def test_no_spelling_of_an_address_gets_fresh_reset_limits(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    # Full-width letters, the ideographic and full-width full stops: one address, one limit.
    async with limited_app(settings, monkeypatch, rate_limit_password_reset="2/30 minutes") as (
        client,
        _resources,
    ):
        for email in ("someone@example.com", "someone@example.com"):
            assert (await client.post(f"{API}/auth/password-reset", json={"email": email})).status_code == 202
        assert_limited(await client.post(f"{API}/auth/password-reset", json={"email": spelling}), 2)


# --- Redis: shared by every worker, and what happens when it fails ------------------------

needs_redis = pytest.mark.skipif(not redis_available(), reason="needs Redis (required with CI=true)")


@needs_redis
async def test_limits_in_redis_are_shared_by_two_app_instances(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = {
        "redis_url": REDIS_URL,
        "rate_limit_key_prefix": f"kith-test:{uuid.uuid4().hex}",
        "rate_limit_login": "4/minute",
        "job_backend": "memory",
    }
    async with limited_app(settings, monkeypatch, **shared) as (one, resources):
        await member(resources, "ada")
        body = {"username": "ada", "password": PASSWORD}
        async with limited_app(settings, monkeypatch, **shared) as (two, _):
            statuses = []
            for client in (one, two, one, two, one, two):
                statuses.append((await client.post(f"{API}/auth/login", json=body)).status_code)
            assert statuses == [200, 200, 200, 200, 429, 429]


@pytest.mark.parametrize("redis_url", ["redis://127.0.0.1:1/0"], ids=["redis-unreachable"])
async def test_when_redis_fails_general_limits_open_and_auth_limits_fall_back(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    overrides = {
        "redis_url": redis_url,
        "job_backend": "memory",
        "rate_limit_general": "2/minute",
        "rate_limit_posts": "2/minute",
        "rate_limit_login": "2/minute",
        "rate_limit_media_uploads": "1/hour",
    }
    async with limited_app(settings, monkeypatch, **overrides) as (client, resources):
        ada = await member(resources, "ada")
        # General and per-route limits other than auth, reset and upload: fail open.
        for i in range(5):
            response = await client.post(f"{API}/posts", json={"content": f"p{i}"}, headers=ada.headers)
            assert response.status_code == 201
            assert "ratelimit-limit" not in response.headers
        # Login and uploads: counted in this process instead, never unlimited.
        body = {"username": "ada", "password": PASSWORD}
        statuses = [(await client.post(f"{API}/auth/login", json=body)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        files = {"file": ("a.png", png(), "image/png")}
        assert (await client.post(f"{API}/media", files=files, headers=ada.headers)).status_code == 201
        assert_limited(await client.post(f"{API}/media", files=files, headers=ada.headers), 1)
