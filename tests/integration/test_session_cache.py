"""The session cache: a session found live a moment ago needs no query, and every change to
a user or a session acts at once all the same (docs/architecture.md#the-session-cache).
Across processes: tests/integration/test_cross_process.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from kith.core.config import Settings
from kith.core.realtime import InProcessHub
from kith.db.models import Role
from kith.runtime.resources import Resources, _session_cache
from kith.runtime.session_cache import SessionCache
from tests.helpers import API, PASSWORD, Account
from tests.posting import member, set_suspended


@pytest.fixture
async def counted(resources: Resources) -> AsyncIterator[list[str]]:
    """The statements the app sends while the test runs (BEGINs left out)."""
    statements: list[str] = []

    def count(*args: Any) -> None:
        if not args[2].startswith("BEGIN"):
            statements.append(args[2])

    event.listen(resources.engine.sync_engine, "before_cursor_execute", count)
    yield statements
    event.remove(resources.engine.sync_engine, "before_cursor_execute", count)


async def test_a_session_found_live_a_moment_ago_needs_no_query(
    client: httpx.AsyncClient, resources: Resources, counted: list[str]
) -> None:
    ada = await member(resources, "ada")
    counted.clear()
    first = await client.get(f"{API}/users/me", headers=ada.headers)
    assert first.status_code == 200
    assert len(counted) == 1  # the session check, which brings the user too
    counted.clear()
    second = await client.get(f"{API}/users/me", headers=ada.headers)
    assert second.status_code == 200 and second.json() == first.json()
    assert counted == []
    # A change made through the cached user is written like any other.
    changed = await client.patch(f"{API}/users/me", json={"display_name": "Ada L"}, headers=ada.headers)
    assert changed.status_code == 200, changed.text
    assert (await client.get(f"{API}/users/me", headers=ada.headers)).json()["display_name"] == "Ada L"


async def _me(client: httpx.AsyncClient, account: Account) -> int:
    return (await client.get(f"{API}/users/me", headers=account.headers)).status_code


Change = Callable[[httpx.AsyncClient, Resources, Account, Account], Awaitable[None]]


async def _logout(client: httpx.AsyncClient, resources: Resources, user: Account, admin: Account) -> None:
    assert (await client.post(f"{API}/auth/logout", headers=user.headers)).status_code == 204


async def _logout_all(client: httpx.AsyncClient, resources: Resources, user: Account, admin: Account) -> None:
    assert (await client.post(f"{API}/auth/logout-all", headers=user.headers)).status_code == 204


async def _suspend(client: httpx.AsyncClient, resources: Resources, user: Account, admin: Account) -> None:
    response = await client.patch(
        f"{API}/admin/users/{user.id}", json={"suspended": True}, headers=admin.headers
    )
    assert response.status_code == 200, response.text


async def _suspend_outside_a_request(
    client: httpx.AsyncClient, resources: Resources, user: Account, admin: Account
) -> None:
    await set_suspended(resources, user)  # a unit of work of its own, as a job or the CLI


async def _delete(client: httpx.AsyncClient, resources: Resources, user: Account, admin: Account) -> None:
    assert (await client.delete(f"{API}/admin/users/{user.id}", headers=admin.headers)).status_code == 204


@pytest.mark.parametrize(
    "change",
    [_logout, _logout_all, _suspend, _suspend_outside_a_request, _delete],
    ids=["logout", "logout_all", "suspension", "suspension_outside_a_request", "deletion"],
)
async def test_every_change_acts_at_once_on_a_cached_session(
    client: httpx.AsyncClient, resources: Resources, change: Change
) -> None:
    user, admin = await member(resources, "user"), await member(resources, "root", Role.admin)
    assert resources.session_cache.enabled
    assert await _me(client, user) == 200
    assert await _me(client, user) == 200  # from the cache
    await change(client, resources, user, admin)
    assert await _me(client, user) == 401


async def test_a_password_change_ends_the_other_cached_sessions_at_once(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    user = await member(resources, "user")
    login = await client.post(f"{API}/auth/login", json={"username": "user", "password": PASSWORD})
    other = Account(user.id, user.username, user.email, login.json()["access_token"], "")
    assert await _me(client, other) == 200 and await _me(client, user) == 200
    response = await client.post(
        f"{API}/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a much better password 41"},
        headers=user.headers,
    )
    assert response.status_code == 204, response.text
    assert await _me(client, other) == 401
    assert await _me(client, user) == 200


async def test_a_role_change_acts_at_once_on_a_cached_session(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    moderator = await member(resources, "mod", Role.moderator)
    admin = await member(resources, "root", Role.admin)
    reports = f"{API}/moderation/reports"
    assert (await client.get(reports, headers=moderator.headers)).status_code == 200
    assert (await client.get(reports, headers=moderator.headers)).status_code == 200  # cached
    demoted = await client.patch(
        f"{API}/admin/users/{moderator.id}", json={"role": "user"}, headers=admin.headers
    )
    assert demoted.status_code == 200, demoted.text
    assert (await client.get(reports, headers=moderator.headers)).status_code == 403


def test_a_check_that_began_before_a_change_stores_nothing() -> None:
    cache = SessionCache(10, lambda: True)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    row = {"id": "u1", "username": "u"}
    began = cache.generation
    cache.forget(["u2"])  # any change, committed while the check ran
    cache.put("s1", now + timedelta(hours=1), row, generation=began)
    assert cache.get("s1", "u1", now) is None
    cache.put("s1", now + timedelta(hours=1), row, generation=cache.generation)
    assert cache.get("s1", "u1", now) == row
    # Not for another user's token, not past the session's end, not past the time to live.
    assert cache.get("s1", "u2", now) is None
    assert cache.get("s1", "u1", now + timedelta(hours=2)) is None


def test_an_entry_lives_no_longer_than_its_time_to_live(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("kith.runtime.session_cache.time.monotonic", lambda: clock[0])
    cache = SessionCache(10, lambda: True)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    cache.put("s1", now + timedelta(hours=1), {"id": "u1"}, generation=cache.generation)
    clock[0] += 9.9
    assert cache.get("s1", "u1", now) is not None
    clock[0] += 0.2
    assert cache.get("s1", "u1", now) is None


def test_the_cache_is_used_only_where_every_change_reaches_it(settings: Settings) -> None:
    hub = InProcessHub()
    assert _session_cache(settings.model_copy(update={"workers": 1}), hub).enabled
    # Several workers without Redis: none would hear of another's changes.
    assert not _session_cache(settings.model_copy(update={"workers": 2}), hub).enabled
    assert not _session_cache(settings.model_copy(update={"session_cache_seconds": 0}), hub).enabled

    class Deaf(InProcessHub):
        healthy = False

        @property
        def notices_healthy(self) -> bool:
            return self.healthy

    deaf = Deaf()
    with_redis = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0", "workers": 4})
    cache = _session_cache(with_redis, deaf)
    assert not cache.enabled
    deaf.healthy = True
    assert cache.enabled
