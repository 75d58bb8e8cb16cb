"""Each worker builds the app once and reuses it (tests/conftest.py): nothing a test leaves
behind may reach the next test. The first test of each pair leaves state everywhere a test
can; the second, run right after it on the same worker, finds none of it.

One xdist group, so both tests of a pair run on one worker, in this order.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import limits
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from kith.core.config import Settings
from kith.core.resources import Resources
from kith.db.models import User
from kith.db.transaction import unit_of_work
from tests.helpers import API, PASSWORD, signup

pytestmark = pytest.mark.xdist_group("isolation")

# What the first test of a pair saw, by backend, for the second to compare with.
_left: dict[str, tuple[FastAPI, Resources, Path]] = {}
_changed: dict[str, FastAPI] = {}
# Counted in the limiter's process-memory storage (its fallback when Redis fails).
ONE_A_MINUTE = limits.parse("1/minute")


async def _users(resources: Resources) -> int:
    async with unit_of_work(resources, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(User)) or 0)


async def test_a_test_leaves_state_in_the_app_it_was_given(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources, settings: Settings, backend: str
) -> None:
    account = await signup(client, "leaver")
    assert await _users(resources) == 1
    await resources.realtime.subscribe(account.id)
    assert resources.realtime.connection_count == 1
    resources.clock.freeze()
    resources.clock.advance(days=3)
    resources.redis_breaker.failed()
    assert await resources.limiter.roles.role_of(resources, account.id) is not None
    local_counts = resources.limiter._local["moving"]
    assert await local_counts.hit(ONE_A_MINUTE, "leaver")
    assert not await local_counts.test(ONE_A_MINUTE, "leaver")
    upload = await client.post(
        f"{API}/media", files={"file": ("a.txt", b"not an image", "text/plain")}, headers=account.headers
    )
    assert upload.status_code in (400, 415, 422), upload.text
    settings.var_dir.joinpath("left-behind").write_text("x")
    _left[backend] = (app, resources, settings.var_dir)


async def test_the_next_test_gets_the_same_app_and_none_of_that_state(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources, settings: Settings, backend: str
) -> None:
    earlier_app, earlier_resources, earlier_var = _left[backend]
    # The built app is reused (else this test would prove nothing)...
    assert app is earlier_app
    # ...with resources of this test's own, and everything in them new.
    assert resources is not earlier_resources
    assert app.state.settings is settings
    assert await _users(resources) == 0
    login = await client.post(f"{API}/auth/login", json={"username": "leaver", "password": PASSWORD})
    assert login.status_code == 401
    assert resources.realtime.connection_count == 0
    assert resources.clock.offset.total_seconds() == 0
    assert resources.clock._frozen_at is None
    assert not resources.redis_breaker.open
    assert resources.limiter.roles._roles == {}
    assert await resources.limiter._local["moving"].test(ONE_A_MINUTE, "leaver")
    assert settings.var_dir != earlier_var
    assert not settings.var_dir.joinpath("left-behind").exists()


async def test_a_test_changes_the_app_it_was_given(
    app: FastAPI, client: httpx.AsyncClient, backend: str
) -> None:
    async def extra() -> dict[str, str]:
        return {"added": "by a test"}

    app.router.add_api_route("/added-by-a-test", extra)
    assert (await client.get("/added-by-a-test")).status_code == 200
    _changed[backend] = app


async def test_the_next_test_gets_an_app_built_afresh(
    app: FastAPI, client: httpx.AsyncClient, backend: str
) -> None:
    assert app is not _changed[backend]
    assert (await client.get("/added-by-a-test")).status_code == 404
