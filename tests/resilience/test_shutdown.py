"""SIGTERM to `kith serve` while many keyed writes and several WebSockets are in flight.

Every write the server had started (its headers and part of its body are in, the rest
arrives after the signal) gets its complete 2xx answer; the sockets are closed with 1012
(service restart); the process exits within its shutdown timeout. Writes still being
sent by a steady stream of clients meet a closed door (a transport error) or an answer:
never a 5xx. After a restart, the door-closed ones are retried with their keys, every
post answered 201 exists once, and the invariants hold.
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

from tests.helpers import API
from tests.processes import Server, account, running, sqlite_env
from tests.resilience.invariants import missing_posts, violations

IN_FLIGHT = 30
SOCKETS = 4
STEADY_WRITERS = 4
SHUTDOWN_TIMEOUT = 10


async def slow_body(body: bytes, sent_first: asyncio.Event, go_on: asyncio.Event) -> AsyncIterator[bytes]:
    """The first bytes of `body`, then the rest once `go_on` is set."""
    yield body[:10]
    sent_first.set()
    await go_on.wait()
    yield body[10:]


def held_by_server(server: Server) -> set[int]:
    """Client ports of the connections the server's workers hold."""
    held: set[int] = set()
    for worker_ports in server.connections_by_worker().values():
        held |= worker_ports
    return held


@pytest.mark.timeout(90)
async def test_sigterm_under_load_answers_every_started_write_and_closes_sockets_with_1012(
    tmp_path: Path,
) -> None:
    env = sqlite_env(
        tmp_path, KITH_SHUTDOWN_TIMEOUT_SECONDS=str(SHUTDOWN_TIMEOUT), KITH_RATE_LIMITS_ENABLED="false"
    )
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'kith.db'}"
    server = Server(env)
    answered: dict[str, str] = {}  # key -> post id
    cut: list[tuple[dict[str, str], str]] = []  # (headers, key) of writes that never got in
    steady_answers: list[int] = []
    limits = httpx.Limits(max_connections=IN_FLIGHT + STEADY_WRITERS + 10)
    try:
        await asyncio.to_thread(server.wait_ready)
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            users = [await account(client, f"leaving{n}") for n in range(SOCKETS)]
        async with contextlib.AsyncExitStack() as stack:
            sockets = []
            for headers in users:
                ws = await stack.enter_async_context(
                    websockets.connect(f"{server.ws_base}{API}/stream", additional_headers=headers)
                )
                assert json.loads(await ws.recv())["event"] == "unread_count"
                sockets.append(ws)
            socket_ports = {ws.local_address[1] for ws in sockets}
            client = await stack.enter_async_context(
                httpx.AsyncClient(base_url=server.base, timeout=30, limits=limits)
            )

            # The started writes: headers and the first bytes of the body are in.
            go_on = asyncio.Event()
            firsts = [asyncio.Event() for _ in range(IN_FLIGHT)]
            started = []
            for n, sent_first in enumerate(firsts):
                key = f"started-{n}"
                body = json.dumps({"content": key, "visibility": "public"}).encode()
                headers = {**users[n % SOCKETS], "Idempotency-Key": key, "Content-Type": "application/json"}
                started.append(
                    asyncio.create_task(
                        client.post(
                            f"{API}/posts", content=slow_body(body, sent_first, go_on), headers=headers
                        )
                    )
                )
            for sent_first in firsts:
                await sent_first.wait()
            # The server has accepted each of their connections (the only ones besides the sockets).
            deadline = time.monotonic() + 10
            while len(held_by_server(server) - socket_ports) < IN_FLIGHT:
                assert time.monotonic() < deadline, "the started writes were not accepted"
                await asyncio.sleep(0.02)  # /proc has no event to await

            stopped = asyncio.Event()
            busy = asyncio.Event()

            async def steady(number: int) -> None:
                headers = users[number % SOCKETS]
                n = 0
                while True:
                    key = f"steady-{number}-{n}"
                    body = {"content": key, "visibility": "public"}
                    try:
                        response = await client.post(
                            f"{API}/posts", json=body, headers={**headers, "Idempotency-Key": key}
                        )
                    except httpx.TransportError:
                        cut.append((headers, key))
                        if stopped.is_set():
                            return
                        continue
                    steady_answers.append(response.status_code)
                    assert response.status_code == 201, response.text
                    answered[key] = response.json()["id"]
                    if len(answered) >= 20:
                        busy.set()
                    n += 1

            steady_tasks = [asyncio.create_task(steady(n)) for n in range(STEADY_WRITERS)]
            # The steady writers are writing too (or one failed: its error ends the test).
            busy_wait = asyncio.create_task(busy.wait())
            await asyncio.wait([busy_wait, *steady_tasks], return_when=asyncio.FIRST_COMPLETED)
            busy_wait.cancel()
            for task in steady_tasks:
                if task.done():
                    task.result()

            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            stopped.set()
            closes = []
            for ws in sockets:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd is not None
                closes.append(closed.value.rcvd.code)
            go_on.set()
            responses = await asyncio.gather(*started)
            await asyncio.wait_for(asyncio.gather(*steady_tasks), SHUTDOWN_TIMEOUT)
        exit_code = await asyncio.to_thread(server.process.wait, SHUTDOWN_TIMEOUT + 5)
        took = time.monotonic() - signalled
    finally:
        server.stop()

    assert closes == [1012] * SOCKETS
    assert [r.status_code for r in responses] == [201] * IN_FLIGHT, [r.text for r in responses]
    for n, response in enumerate(responses):
        assert response.json()["content"] == f"started-{n}"
        answered[f"started-{n}"] = response.json()["id"]
    assert set(steady_answers) == {201}
    assert exit_code in (0, -signal.SIGTERM)
    assert took < SHUTDOWN_TIMEOUT, took

    # Restarted: the writes that met the closed door go again with their keys.
    with running(env) as restarted:
        async with httpx.AsyncClient(base_url=restarted.base, timeout=30) as client:
            for headers, key in cut:
                again = {"content": key, "visibility": "public"}
                retry = await client.post(
                    f"{API}/posts", json=again, headers={**headers, "Idempotency-Key": key}
                )
                assert retry.status_code == 201, retry.text
                if key in answered:
                    assert retry.json()["id"] == answered[key]
                answered[key] = retry.json()["id"]
    assert await missing_posts(database_url, answered.values()) == []
    found = await violations(database_url, tmp_path / "var" / "media")
    print(
        f"\nSIGTERM: {IN_FLIGHT} writes in flight answered 201, {len(steady_answers)} steady writes "
        f"answered, {len(cut)} met the closed door and were retried after restart, "
        f"{SOCKETS} sockets closed 1012, exit after {took:.2f} s, {len(found)} violations"
    )
    assert found == []
