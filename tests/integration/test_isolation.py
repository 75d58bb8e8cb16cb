"""Each worker builds the app once and reuses it (tests/conftest.py): nothing a test leaves
behind may reach the next test. Each test below starts by checking that it finds none of
the state a test can leave (true of any test's start), and, when one of its twins ran
before it on this worker, that it got the same built app with new resources; then it
leaves that state everywhere for the next twin. They pass in any order.

One xdist group, so the twins run on one worker.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import limits
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from kith.core.config import Settings
from kith.db.models import User
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
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


@pytest.mark.parametrize("twin", ["one", "two"])
async def test_a_test_finds_no_state_an_earlier_one_left_in_the_reused_app(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources, settings: Settings, backend: str, twin: str
) -> None:
    earlier = _left.get(backend)
    if earlier is not None:
        earlier_app, earlier_resources, earlier_var = earlier
        # The built app is reused (else this would prove little)...
        assert app is earlier_app
        # ...with resources of this test's own.
        assert resources is not earlier_resources
        assert settings.var_dir != earlier_var
    assert app.state.settings is settings
    # Nothing in the database, the live-event hub, the clock, the breakers, the limiter's
    # role cache and memory counts, or the var directory.
    assert await _users(resources) == 0
    login = await client.post(f"{API}/auth/login", json={"username": "leaver", "password": PASSWORD})
    assert login.status_code == 401
    assert resources.realtime.connection_count == 0
    assert resources.clock.offset.total_seconds() == 0
    assert resources.clock._frozen_at is None
    assert not resources.redis_breaker.open
    assert resources.limiter.roles._roles == {}
    local_counts = resources.limiter._local["moving"]
    assert await local_counts.test(ONE_A_MINUTE, "leaver")
    assert not settings.var_dir.joinpath("left-behind").exists()

    # Now leave all of that behind.
    account = await signup(client, "leaver")
    assert await _users(resources) == 1
    await resources.realtime.subscribe(account.id)
    assert resources.realtime.connection_count == 1
    resources.clock.freeze()
    resources.clock.advance(days=3)
    resources.redis_breaker.failed()
    assert await resources.limiter.roles.role_of(resources, account.id) is not None
    assert await local_counts.hit(ONE_A_MINUTE, "leaver")
    assert not await local_counts.test(ONE_A_MINUTE, "leaver")
    settings.var_dir.joinpath("left-behind").write_text("x")
    _left[backend] = (app, resources, settings.var_dir)


@pytest.mark.parametrize("twin", ["one", "two"])
async def test_a_test_that_changes_the_app_leaves_the_next_an_app_built_afresh(
    app: FastAPI, client: httpx.AsyncClient, backend: str, twin: str
) -> None:
    earlier = _changed.get(backend)
    if earlier is not None:
        assert app is not earlier
    assert (await client.get("/added-by-a-test")).status_code == 404

    async def extra() -> dict[str, str]:
        return {"added": "by a test"}

    app.router.add_api_route("/added-by-a-test", extra)
    assert (await client.get("/added-by-a-test")).status_code == 200
    _changed[backend] = app
