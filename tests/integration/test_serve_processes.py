"""`kith serve` as real processes: several workers, and graceful shutdown on SIGTERM.

Which worker serves a connection is observed from outside, through Linux's /proc (the
server-side socket of each TCP connection and the worker holding it), so the API exposes
nothing for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import REDIS_URL, empty_postgres, postgres_available, redis_available
from tests.helpers import API
from tests.processes import PASSWORD, Server, account, base_env, running, sqlite_env


@pytest.fixture
def postgres_redis_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if not (postgres_available() and redis_available()):
        pytest.skip("needs PostgreSQL and Redis (required, and never skipped, with CI=true)")
    database_url: str = request.getfixturevalue("postgres_url")
    asyncio.run(empty_postgres(database_url))
    return base_env(
        tmp_path, KITH_DATABASE_URL=database_url, KITH_REDIS_URL=REDIS_URL, KITH_JOB_BACKEND="memory"
    )


# --- several workers ------------------------------------------------------------------


def requests_counted(metrics: str, route: str) -> float:
    """The `kith_http_requests_total` value of GET `route` answered 200, from a scrape."""
    wanted = f'kith_http_requests_total{{method="GET",route="{route}",status="200"}}'
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(wanted))


async def test_two_workers_on_sqlite_share_the_load(tmp_path: Path) -> None:
    token = "metrics-token-for-the-test"
    with running(sqlite_env(tmp_path, KITH_METRICS_TOKEN=token), "--workers", "2") as server:
        workers = set(server.workers())
        assert len(workers) == 2
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            headers = await account(client, "loaded")
        served_by: set[int] = set()
        rounds = 0
        # 50 concurrent requests on 50 new connections, until both workers have served some.
        while served_by != workers and rounds < 5:
            async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=30) as client:
                # Writes in the first round only, to stay under the per-user post rate limit.
                writing = 10 if rounds == 0 else 0
                reads = [client.get(f"{API}/users/me", headers=headers) for _ in range(50 - writing)]
                writes = [
                    client.post(
                        f"{API}/posts", json={"content": f"post {i}", "visibility": "public"}, headers=headers
                    )
                    for i in range(writing)
                ]
                responses = await asyncio.gather(*reads, *writes)
                assert [r.status_code for r in responses[: 50 - writing]] == [200] * (50 - writing)
                assert [r.status_code for r in responses[50 - writing :]] == [201] * writing
                # The pool keeps the 50 connections open: see which worker holds them.
                served_by |= {pid for pid, ports in server.connections_by_worker().items() if ports}
            rounds += 1
        assert served_by == workers
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            # Every write, whichever worker made it, is visible.
            me = (await client.get(f"{API}/users/me", headers=headers)).json()["id"]
            posts = await client.get(f"{API}/users/{me}/posts", headers=headers, params={"limit": 100})
            assert posts.status_code == 200
            assert len(posts.json()["items"]) == 10
            assert (await client.get("/readyz")).status_code == 200
            # `kith serve` gave the workers one metrics directory: a scrape, answered by
            # either worker, counts the requests both of them served.
            reads_sent = sum(50 - (10 if i == 0 else 0) for i in range(rounds)) + 1
            scrape = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
            assert requests_counted(scrape.text, f"{API}/users/me") == reads_sent


async def test_two_workers_with_postgres_and_redis_deliver_live_events_to_every_worker(
    postgres_redis_env: dict[str, str],
) -> None:
    # Sockets are opened until both workers hold one, which may take more than an account's
    # cap of open streams (counted across both workers with Redis).
    env = {**postgres_redis_env, "KITH_STREAM_MAX_PER_USER": "30"}
    with running(env, "--workers", "2", redis=True) as server:
        workers = set(server.workers())
        assert len(workers) == 2
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            author = await account(client, "author")
            fan = await account(client, "fan")
            created = await client.post(
                f"{API}/posts", json={"content": "hello", "visibility": "public"}, headers=author
            )
            post_id = created.json()["id"]
            async with contextlib.AsyncExitStack() as stack:
                sockets: list[websockets.ClientConnection] = []
                # Open the author's sockets until both workers hold at least one.
                for _ in range(30):
                    ws = await stack.enter_async_context(
                        websockets.connect(f"{server.ws_base}{API}/stream", additional_headers=author)
                    )
                    assert json.loads(await ws.recv())["event"] == "unread_count"
                    sockets.append(ws)
                    holders = {
                        pid
                        for pid, ports in server.connections_by_worker().items()
                        for socket in sockets
                        if socket.local_address[1] in ports
                    }
                    if holders == workers:
                        break
                assert holders == workers
                # One like, served by whichever worker, reaches every socket on both workers.
                like = await client.post(f"{API}/posts/{post_id}/like", headers=fan)
                assert like.status_code == 201
                for ws in sockets:
                    event = json.loads(await asyncio.wait_for(ws.recv(), 2.0))
                    assert event["event"] == "notification"
                    assert event["data"]["type"] == "post_liked"


# --- graceful shutdown ---------------------------------------------------------------


async def _slow_body(parts: list[bytes], sent_first: asyncio.Event, pause: float) -> AsyncIterator[bytes]:
    yield parts[0]
    sent_first.set()
    for part in parts[1:]:
        await asyncio.sleep(pause)
        yield part


async def test_sigterm_finishes_requests_in_flight_and_closes_sockets_with_1012(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path, KITH_SHUTDOWN_TIMEOUT_SECONDS="10")
    server = Server(env)
    try:
        server.wait_ready()
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            headers = await account(client, "leaving")
            async with websockets.connect(f"{server.ws_base}{API}/stream", additional_headers=headers) as ws:
                assert json.loads(await ws.recv())["event"] == "unread_count"
                # A login whose body arrives slowly, over more than a second after SIGTERM.
                body = json.dumps({"username": "leaving", "password": PASSWORD}).encode()
                parts = [body[:10], body[10:20], body[20:]]
                sent_first = asyncio.Event()
                slow = asyncio.create_task(
                    client.post(
                        f"{API}/auth/login",
                        content=_slow_body(parts, sent_first, 0.8),
                        headers={"Content-Type": "application/json"},
                    )
                )
                await sent_first.wait()
                await asyncio.sleep(0.3)  # the server has the request's headers
                server.process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 1012
                response = await slow
                assert response.status_code == 200
                assert response.json()["access_token"]
                assert time.monotonic() - signalled > 1.0  # it was really in flight
        exited = await asyncio.to_thread(server.process.wait, 15)
        assert exited in (0, -signal.SIGTERM)
        assert time.monotonic() - signalled < 10
        # New connections are refused once it has gone.
        async with httpx.AsyncClient(base_url=server.base, timeout=1) as after:
            with pytest.raises(httpx.ConnectError):
                await after.get("/healthz")
    finally:
        server.stop()


async def test_sigterm_cuts_a_stalled_request_after_the_shutdown_timeout(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path, KITH_SHUTDOWN_TIMEOUT_SECONDS="2")
    server = Server(env)
    try:
        server.wait_ready()
        # A request whose body never arrives in full: only the timeout ends it.
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            f"POST {API}/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
            + b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"username"'
        )
        await writer.drain()
        await asyncio.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        await asyncio.to_thread(server.process.wait, 15)
        took = time.monotonic() - signalled
        assert 2 <= took < 4, took
        writer.close()
    finally:
        server.stop()


# --- malformed requests -------------------------------------------------------------


async def _raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, object]]:
    """Send `request` as written on one connection; the status and JSON body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length = next(
            int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
        )
        body = json.loads(await reader.readexactly(length)) if length else {}
    finally:
        writer.close()
    return status, body


async def test_two_host_headers_and_a_target_for_another_host_are_refused(tmp_path: Path) -> None:
    # On the server and parser a deployment runs: the HTTP parser decides what reaches the app.
    with running(sqlite_env(tmp_path)) as server:
        here = f"127.0.0.1:{server.port}".encode()
        status, body = await _raw_exchange(
            server.port, b"GET /healthz HTTP/1.1\r\nHost: " + here + b"\r\nHost: evil.example\r\n\r\n"
        )
        assert (status, body["code"]) == (400, "invalid_host")
        assert body["detail"] == "The request carries more than one Host header."
        # Two Host headers naming the same host are two Host headers all the same.
        status, body = await _raw_exchange(
            server.port, b"GET /healthz HTTP/1.1\r\nHost: " + here + b"\r\nHost: " + here + b"\r\n\r\n"
        )
        assert (status, body["code"]) == (400, "invalid_host")
        # An absolute-form target names the host (RFC 9112), whatever the Host header says.
        for target in (
            b"http://evil.example/healthz",
            b"http://evil.example:" + str(server.port).encode() + b"/healthz",
        ):
            status, body = await _raw_exchange(
                server.port, b"GET " + target + b" HTTP/1.1\r\nHost: " + here + b"\r\n\r\n"
            )
            assert (status, body["code"]) == (421, "misdirected_request"), target
        # One naming this server is served, as is the usual form.
        for target in (b"http://127.0.0.1:" + str(server.port).encode() + b"/healthz", b"/healthz"):
            status, body = await _raw_exchange(
                server.port, b"GET " + target + b" HTTP/1.1\r\nHost: " + here + b"\r\n\r\n"
            )
            assert status == 200, target
