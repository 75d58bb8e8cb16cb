"""Two real server processes sharing PostgreSQL and Redis behave as one service."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import REDIS_URL, Mailbox, empty_postgres, postgres_available, redis_available
from tests.helpers import API
from tests.live import free_port

KITH = str(Path(sys.executable).parent / "kith")


def _wait_ready(base: str, deadline: float) -> None:
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).json()["checks"]["redis"] == "ok":
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "servers did not start"
        time.sleep(0.1)


@contextlib.contextmanager
def started(env: dict[str, str], *commands: list[str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Run `kith` commands as processes; SIGTERM them all on exit."""
    processes = [
        subprocess.Popen([KITH, *command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for command in commands
    ]
    try:
        yield processes
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)


@pytest.fixture
def shared_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Settings for several processes sharing one PostgreSQL database and one Redis."""
    # Several processes share one database: only PostgreSQL is that database at scale.
    if not (postgres_available() and redis_available()):
        pytest.skip("needs PostgreSQL and Redis (required, and never skipped, with CI=true)")
    database_url: str = request.getfixturevalue("postgres_url")
    asyncio.run(empty_postgres(database_url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITH_")}
    env.update(
        KITH_DATABASE_URL=database_url,
        KITH_REDIS_URL=REDIS_URL,
        KITH_FEED_TIMELINES="true",  # a post on one process reaches timelines the other serves
        KITH_SECRET_KEY="cross-process-test-key-" + "x" * 20,
        KITH_VAR_DIR=str(tmp_path / "var"),
        KITH_JOB_BACKEND="memory",
        KITH_LOG_LEVEL="WARNING",
        # Limits on, as in production, counted under keys of this test's own.
        KITH_RATE_LIMIT_KEY_PREFIX=f"kith-test:{uuid.uuid4().hex}",
        KITH_RATE_LIMIT_LOGIN="4/minute",
    )
    return env


@contextlib.contextmanager
def serving(env: dict[str, str], count: int = 2) -> Iterator[list[str]]:
    """`count` `kith serve` processes on their own ports, ready; their base URLs."""
    ports = [free_port() for _ in range(count)]
    with started(env, *(["serve", "--port", str(port)] for port in ports)):
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        deadline = time.monotonic() + 30
        for base in bases:
            _wait_ready(base, deadline)
        yield bases


@pytest.fixture
def two_servers(shared_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    with serving(shared_env) as bases:
        yield bases[0], bases[1]


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


async def test_jobs_queued_by_either_process_run_in_a_separate_worker(
    shared_env: dict[str, str], smtp_server: tuple[Mailbox, int]
) -> None:
    mailbox, smtp_port = smtp_server
    mailbox.clear()
    env = {
        **shared_env,
        "KITH_JOB_BACKEND": "redis",
        "KITH_JOB_QUEUE": f"kith-test-jobs:{uuid.uuid4().hex}",
        "KITH_EMAIL_BACKEND": "smtp",
        "KITH_SMTP_HOST": "127.0.0.1",
        "KITH_SMTP_PORT": str(smtp_port),
    }
    with serving(env) as bases:
        async with httpx.AsyncClient() as client:
            for number, base in enumerate(bases):
                body = {
                    "username": f"user{number}",
                    "email": f"user{number}@example.com",
                    "password": "separate worker secret",
                }
                assert (await client.post(f"{base}{API}/auth/register", json=body)).status_code == 201
        # The servers only queue the e-mails: with no worker running, none is sent.
        await asyncio.sleep(1.0)
        assert mailbox.messages == []
        with started(env, ["worker"]):
            deadline = time.monotonic() + 20
            # Each registration queues a verification and a welcome e-mail.
            while len(mailbox.messages) < 4:
                assert time.monotonic() < deadline, f"worker delivered {len(mailbox.messages)} of 4 e-mails"
                await asyncio.sleep(0.1)
        assert sorted({message["To"] for message in mailbox.messages}) == [
            "user0@example.com",
            "user1@example.com",
        ]


async def test_a_change_on_one_process_reaches_the_others_session_cache_at_once(
    shared_env: dict[str, str],
) -> None:
    # A minute to live: only the notice through Redis can make the second process forget.
    env = {**shared_env, "KITH_SESSION_CACHE_SECONDS": "60"}
    with serving(env) as (first, second):
        async with httpx.AsyncClient(base_url=first) as one, httpx.AsyncClient(base_url=second) as two:
            password = "cross process pw"
            body = {"username": "ada", "email": "ada@example.com", "password": password}
            assert (await one.post(f"{API}/auth/register", json=body)).status_code == 201
            logins = [
                await one.post(f"{API}/auth/login", json={"username": "ada", "password": password})
                for _ in range(2)
            ]
            kept, ended = ({"Authorization": f"Bearer {login.json()['access_token']}"} for login in logins)
            for headers in (kept, ended):
                for _ in range(2):  # the second answer comes from the second process's cache
                    assert (await two.get(f"{API}/users/me", headers=headers)).status_code == 200
            # A profile change on the first process: the second shows it at once.
            changed = await one.patch(f"{API}/users/me", json={"display_name": "Ada L"}, headers=kept)
            assert changed.status_code == 200
            shown = await _eventually_json(two, kept, lambda me: me.get("display_name") == "Ada L")
            assert shown["display_name"] == "Ada L"
            # A logout on the first process: the second refuses the token at once.
            assert (await one.post(f"{API}/auth/logout", headers=ended)).status_code == 204
            started = time.perf_counter()
            while (await two.get(f"{API}/users/me", headers=ended)).status_code != 401:
                assert time.perf_counter() - started < 0.5, "the second process still believed the session"
                await asyncio.sleep(0.01)
            assert (await two.get(f"{API}/users/me", headers=kept)).status_code == 200


async def _eventually_json(
    client: httpx.AsyncClient, headers: dict[str, str], done: Callable[[dict[str, object]], bool]
) -> dict[str, object]:
    started = time.perf_counter()
    while True:
        body: dict[str, object] = (await client.get(f"{API}/users/me", headers=headers)).json()
        if done(body) or time.perf_counter() - started > 0.5:
            return body
        await asyncio.sleep(0.01)


async def _stream_answer(ws: websockets.ClientConnection) -> str | int:
    """The first event a new stream gets, or the code it was closed with."""
    try:
        event: dict[str, object] = json.loads(await asyncio.wait_for(ws.recv(), 5.0))
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else "closed without a code"
    return str(event["event"])


async def test_stream_caps_hold_across_both_processes(shared_env: dict[str, str]) -> None:
    env = {**shared_env, "KITH_STREAM_MAX_PER_USER": "2"}
    with serving(env) as (first, second):
        async with httpx.AsyncClient(base_url=first) as one:
            body = {"username": "ada", "email": "ada@example.com", "password": "cross process pw"}
            assert (await one.post(f"{API}/auth/register", json=body)).status_code == 201
            login = await one.post(
                f"{API}/auth/login", json={"username": "ada", "password": body["password"]}
            )
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        urls = [base.replace("http://", "ws://") + f"{API}/stream" for base in (first, second)]
        async with contextlib.AsyncExitStack() as stack:
            # One stream on each process: the account's two places, counted across both.
            held = [
                await stack.enter_async_context(websockets.connect(url, additional_headers=headers))
                for url in urls
            ]
            assert [await _stream_answer(ws) for ws in held] == ["unread_count"] * 2
            # A third is refused whichever process it reaches, though each holds only one.
            for url in urls:
                async with websockets.connect(url, additional_headers=headers) as extra:
                    assert await _stream_answer(extra) == 4429
            # Closing the one on the second process frees a place on the first.
            await held[1].close()
            started = time.monotonic()
            while True:
                async with websockets.connect(urls[0], additional_headers=headers) as again:
                    answer = await _stream_answer(again)
                    if answer == "unread_count":
                        # And the cap holds again, on both.
                        for url in urls:
                            async with websockets.connect(url, additional_headers=headers) as extra:
                                assert await _stream_answer(extra) == 4429
                        break
                assert answer == 4429
                assert time.monotonic() - started < 5, "the closed stream's place was not freed"
                await asyncio.sleep(0.05)
