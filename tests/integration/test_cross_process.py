"""Two real server processes sharing PostgreSQL and Redis behave as one service."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import REDIS_URL, empty_postgres, postgres_available, redis_available
from tests.helpers import API
from tests.live import free_port

KITH = str(Path(sys.executable).parent / "kith")


@pytest.fixture
def two_servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    # Several processes share one database: only PostgreSQL is that database at scale.
    if not (postgres_available() and redis_available()):
        pytest.skip("needs PostgreSQL and Redis (required, and never skipped, with CI=true)")
    database_url: str = request.getfixturevalue("postgres_url")
    asyncio.run(empty_postgres(database_url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITH_")}
    env.update(
        KITH_DATABASE_URL=database_url,
        KITH_REDIS_URL=REDIS_URL,
        KITH_SECRET_KEY="cross-process-test-key-" + "x" * 20,
        KITH_VAR_DIR=str(tmp_path / "var"),
        KITH_JOB_BACKEND="memory",
        KITH_LOG_LEVEL="WARNING",
        # Limits on, as in production, counted under keys of this test's own.
        KITH_RATE_LIMIT_KEY_PREFIX=f"kith-test:{uuid.uuid4().hex}",
        KITH_RATE_LIMIT_LOGIN="4/minute",
    )
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [KITH, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        for port in ports
    ]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 30
        for base in bases:
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=1).json()["checks"]["redis"] == "ok":
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "servers did not start"
                time.sleep(0.1)
        yield bases[0], bases[1]
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


async def test_like_on_one_process_reaches_a_socket_on_the_other(two_servers: tuple[str, str]) -> None:
    first, second = two_servers
    async with httpx.AsyncClient(base_url=first) as one, httpx.AsyncClient(base_url=second) as two:
        for name in ("author", "fan"):
            body = {"username": name, "email": f"{name}@example.com", "password": "cross process pw"}
            assert (await one.post(f"{API}/auth/register", json=body)).status_code == 201
        tokens = {}
        for name in ("author", "fan"):
            login = await two.post(
                f"{API}/auth/login", json={"username": name, "password": "cross process pw"}
            )
            tokens[name] = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = await one.post(
            f"{API}/posts", json={"content": "hi", "visibility": "public"}, headers=tokens["author"]
        )
        post_id = created.json()["id"]
        url = second.replace("http://", "ws://") + f"{API}/stream"
        async with websockets.connect(url, additional_headers=tokens["author"]) as ws:
            assert json.loads(await ws.recv())["event"] == "unread_count"
            started = time.perf_counter()
            # The like is served by the first process; the socket lives on the second.
            assert (await one.post(f"{API}/posts/{post_id}/like", headers=tokens["fan"])).status_code == 201
            event = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
            elapsed = time.perf_counter() - started
            assert event["event"] == "notification"
            assert event["data"]["type"] == "post_liked"
            assert elapsed < 1.0
            # Logging out on the first process closes the socket on the second.
            assert (await one.post(f"{API}/auth/logout", headers=tokens["author"])).status_code == 204
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 2.0)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4401
        # Both processes read the same feed.
        for client in (one, two):
            response = await client.get(f"{API}/feed", headers=tokens["fan"])
            assert response.status_code == 200


async def test_rate_limits_are_shared_by_both_processes(two_servers: tuple[str, str]) -> None:
    first, second = two_servers
    async with httpx.AsyncClient(base_url=first) as one, httpx.AsyncClient(base_url=second) as two:
        body = {"username": "ada", "email": "ada@example.com", "password": "cross process pw"}
        assert (await one.post(f"{API}/auth/register", json=body)).status_code == 201
        login = {"username": "ada", "password": "cross process pw"}
        answers = [await client.post(f"{API}/auth/login", json=login) for client in (one, two, one, two)]
        assert [answer.status_code for answer in answers] == [200] * 4
        assert [answer.headers["ratelimit-remaining"] for answer in answers] == ["3", "2", "1", "0"]
        # The budget is spent on both processes, whichever served the earlier logins.
        for client in (one, two):
            refused = await client.post(f"{API}/auth/login", json=login)
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
        # The general limit is one count across both processes too.
        token = {"Authorization": f"Bearer {answers[0].json()['access_token']}"}
        remaining = [
            int((await client.get(f"{API}/users/me", headers=token)).headers["ratelimit-remaining"])
            for client in (one, two, one, two)
        ]
        assert remaining == [remaining[0] - i for i in range(4)]
