"""PostgreSQL failing under a running `kith serve`: connections killed, the server stopped
and started again, every pooled connection busy.

Each test drives a real `kith serve` against a private PostgreSQL (tests/resilience/
services.py) that it may kill, stop and start; the shared server is never touched.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.helpers import API
from tests.processes import Server, account, base_env, migrate, running
from tests.resilience.invariants import missing_posts, violations
from tests.resilience.load import Answer, Load, leaks
from tests.resilience.services import PrivatePostgres, eventually, private_postgres, require_services

SUCCESS = {200, 201}
TEST_APPLICATION = "kith-fault-test"
# Kith's connections on the private cluster: every client backend but the test's own.
KITH_BACKENDS = (
    "SELECT {what} FROM pg_stat_activity WHERE backend_type = 'client backend' "
    "AND datname = current_database() AND application_name <> 'kith-fault-test'"
)


async def _admin(pg: PrivatePostgres) -> asyncpg.Connection:
    return await asyncpg.connect(pg.dsn(), server_settings={"application_name": TEST_APPLICATION})


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    require_services()
    with private_postgres() as server:
        yield server


@pytest.fixture
def pg(postgres: PrivatePostgres) -> PrivatePostgres:
    if not postgres.running():
        postgres.start()
    return postgres


def _assert_unavailable(answer: Answer) -> None:
    """A 503 as docs/api.md describes it: problem details, `Retry-After`, nothing internal."""
    assert answer.status == 503, answer
    assert answer.code == "service_unavailable", answer
    assert answer.retry_after is not None and int(answer.retry_after) >= 1, answer
    assert leaks(answer) == [], answer


async def _terminate_kith(pg: PrivatePostgres) -> int:
    admin = await _admin(pg)
    try:
        rows = await admin.fetch(KITH_BACKENDS.format(what="pg_terminate_backend(pid)"))
    finally:
        await admin.close()
    return len(rows)


async def _kith_connections(pg: PrivatePostgres) -> list[str]:
    admin = await _admin(pg)
    try:
        return [row[0] for row in await admin.fetch(KITH_BACKENDS.format(what="state"))]
    finally:
        await admin.close()


@pytest.mark.timeout(120)
async def test_postgres_killed_and_restarted_under_load(pg: PrivatePostgres, tmp_path: Path) -> None:
    env = base_env(tmp_path, KITH_DATABASE_URL=pg.url(), KITH_RATE_LIMITS_ENABLED="false")
    migrate(env)
    with running(env, "--workers", "2") as server:
        workers = server.workers()
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            accounts = [await account(client, f"pgfault{n}") for n in range(3)]
            load = Load(server.base, accounts)
            async with load.running(workers_per_account=2):
                await load.wait_answers("up", 40)

                # 1. Every connection Kith holds is killed, three times over.
                load.set_phase("terminated")
                terminated = 0
                for _ in range(3):
                    terminated += await _terminate_kith(pg)
                    await load.wait_more(20)

                # 2. The server stops at once (a crash: clients are cut off mid-query).
                load.set_phase("stopping")
                await asyncio.to_thread(pg.stop, "immediate")
                load.set_phase("down")
                await load.wait_answers("down", 60)
                ready = await client.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"]["database"] == "failed"

                # 3. It comes back; Kith is not restarted.
                load.set_phase("starting")
                await asyncio.to_thread(pg.start)
                load.set_phase("back")
                for kind in ("post", "comment", "me", "feed"):
                    await load.wait_success("back", kind)
                await load.wait_answers("back", 80)
            assert (await client.get("/readyz")).status_code == 200
        assert server.process.poll() is None and server.workers() == workers

    answers = load.answers
    by_phase = collections.Counter((a.started_in, a.status) for a in answers)
    print(
        f"\nanswers: {len(answers)}, connections terminated: {terminated}",
        f"by (phase, status): {dict(by_phase)}",
    )
    print(f"slowest answer: {max(a.seconds for a in answers):.2f} s")

    assert terminated >= 3
    # Never a 500, never a dropped or hung request.
    assert [a for a in answers if a.status not in SUCCESS | {503}] == []
    for answer in answers:
        if answer.status == 503:
            _assert_unavailable(answer)
    # Refused connections fail fast: no request waited anywhere near a client timeout.
    assert max(a.seconds for a in answers) < 5
    # Before the faults and once PostgreSQL is back, everything succeeds.
    assert {a.status for a in load.within("up")} <= SUCCESS
    assert {a.status for a in load.within("back")} <= SUCCESS
    # While it is down, nothing does.
    down = load.within("down")
    assert len(down) >= 60 and {a.status for a in down} == {503}

    created = load.posts_created()
    assert created
    assert await missing_posts(pg.url(), created) == []
    assert await violations(pg.url(), tmp_path / "var" / "media") == []


POOL_SIZE = 2  # and as many again in overflow: 4 connections per process
POOL_TIMEOUT = 1.0


async def _me_concurrently(
    client: httpx.AsyncClient, headers: dict[str, str], count: int
) -> list[asyncio.Task[httpx.Response]]:
    return [asyncio.create_task(client.get(f"{API}/users/me", headers=headers)) for _ in range(count)]


@pytest.mark.timeout(90)
async def test_pool_exhaustion_is_a_503_and_leaks_no_connection(pg: PrivatePostgres, tmp_path: Path) -> None:
    env = base_env(
        tmp_path,
        KITH_DATABASE_URL=pg.url(),
        KITH_RATE_LIMITS_ENABLED="false",
        KITH_DATABASE_POOL_SIZE=str(POOL_SIZE),
        KITH_DATABASE_POOL_TIMEOUT_SECONDS=str(POOL_TIMEOUT),
        # Every `GET /users/me` must read `users`, which the lock below blocks: the session
        # cache would answer a repeated one without a query (and so without waiting).
        KITH_SESSION_CACHE_SECONDS="0",
    )
    migrate(env)
    capacity = 2 * POOL_SIZE
    with running(env) as server:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            headers = await account(client, "pooled")
            # An exclusive lock on users makes every request that reads it hold its
            # pooled connection until the lock goes: the pool is busy for as long as we like.
            blocker = await _admin(pg)
            try:
                transaction = blocker.transaction()
                await transaction.start()
                await blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                flood = await _me_concurrently(client, headers, 3 * capacity)
                # The requests past the pool's capacity wait POOL_TIMEOUT, then get a 503.
                waiting: set[asyncio.Task[httpx.Response]] = set(flood)
                async with asyncio.timeout(POOL_TIMEOUT + 10):
                    while len(waiting) > capacity:
                        _, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                done = {task for task in flood if task.done()}
                pending = [task for task in flood if not task.done()]
                # Exactly `capacity` requests hold a connection, blocked on the lock.
                assert len(pending) == capacity
                refused = [task.result() for task in done]
                assert await _kith_connections(pg) == ["active"] * capacity
                # Not ready while no request could get a connection, and it says so at once.
                started = asyncio.get_running_loop().time()
                ready = await client.get("/readyz")
                assert ready.status_code == 503, ready.text
                assert ready.json()["checks"]["database"] == "exhausted"
                assert asyncio.get_running_loop().time() - started < POOL_TIMEOUT
                await transaction.rollback()
                held = [await task for task in pending]
            finally:
                await blocker.close()
            assert all(response.status_code == 200 for response in held)
            # Ready again once the pool has a connection free.
            assert (await client.get("/readyz")).json()["checks"]["database"] == "ok"
            for response in refused:
                assert response.status_code == 503, response.text
                assert response.json()["code"] == "service_unavailable"
                assert int(response.headers["retry-after"]) >= 1
                assert leaks(Answer("me", "", "", 503, None, None, response.text, 0, None)) == []

            # No connection leaked: once the lock is held again, `capacity` requests can
            # all still get one (a leaked one would make the last of them wait and 503).
            blocker = await _admin(pg)
            try:
                transaction = blocker.transaction()
                await transaction.start()
                await blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                again = await _me_concurrently(client, headers, capacity)
                # Past the pool's wait, none has been refused: every one got a connection.
                finished, _ = await asyncio.wait(again, timeout=POOL_TIMEOUT + 2)
                assert finished == set()
                await transaction.rollback()
                assert [(await task).status_code for task in again] == [200] * capacity
            finally:
                await blocker.close()
            after = await asyncio.gather(*(client.get(f"{API}/users/me", headers=headers) for _ in range(50)))
            assert {response.status_code for response in after} == {200}
            states = await _kith_connections(pg)
            assert len(states) <= capacity and set(states) <= {"idle"}
    print(
        f"\npool exhaustion: {len(flood)} concurrent requests,",
        f"{len(held)} served, {len(refused)} answered 503",
    )


@pytest.mark.timeout(60)
async def test_a_database_that_never_answers_is_a_503_within_the_connect_timeout(tmp_path: Path) -> None:
    """A PostgreSQL host that accepts TCP connections and then says nothing (hung, or
    a dead host behind a load balancer): asyncpg would wait 60 s by default."""
    require_services()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # the kernel completes handshakes; nothing ever reads or answers
    port = silent.getsockname()[1]
    env = base_env(
        tmp_path,
        KITH_DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:{port}/kith",
        KITH_RATE_LIMITS_ENABLED="false",
        KITH_DATABASE_CONNECT_TIMEOUT_SECONDS="1",
    )
    server = Server(env)
    try:
        async with httpx.AsyncClient(base_url=server.base, timeout=10) as client:

            async def live() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(live, timeout=30)
            ready, ready_seconds = await _timed(client.get("/readyz"))
            login, login_seconds = await _timed(
                client.post(f"{API}/auth/login", json={"username": "someone", "password": "whatever pw"})
            )
    finally:
        server.stop()
        silent.close()
    print(f"\nsilent database: /readyz {ready_seconds:.2f} s, login {login_seconds:.2f} s")
    assert ready.status_code == 503 and ready.json()["checks"]["database"] == "failed"
    answer = Answer("login", "", "", login.status_code, login.json().get("code"),
                    login.headers.get("retry-after"), login.text, login_seconds, None)  # fmt: skip
    _assert_unavailable(answer)
    # The connect timeout (1 s) and scheduling noise, never asyncpg's own 60 s.
    assert ready_seconds < 2.5 and login_seconds < 2.5


async def _timed(request: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    response = await request
    return response, time.perf_counter() - began
