"""kill -9 of a `kith serve` worker at random moments during writes: nothing answered is lost.

Writers create posts, comments and likes, each create with an `Idempotency-Key`. A
request cut by the kill (a transport error) is retried with the same key until it is
answered. On SQLite the one `kith serve` process is killed and started again; on
PostgreSQL `kith serve --workers 2` runs and one worker is killed, which the supervisor
replaces while the other keeps serving.

A worker killed mid-request leaves its key's mark in progress, and docs/api.md#conventions
answers 409 `idempotency_in_progress` to a retry until the mark is 60 s old. A writer
that gets that 409 for a key whose previous attempt died with the worker (it is the only
one using its keys, so no live request holds the mark) moves that mark's `updated_at`
61 s back in the database, standing in for the 60 s wait, and retries: the retry then
takes the mark over. The counts are reported by the test's output line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import create_async_engine

from kith.db.models import Comment, IdempotencyKey, Post
from tests.conftest import REDIS_URL, empty_postgres, postgres_available, redis_available
from tests.helpers import API
from tests.processes import Server, account, base_env, sqlite_env
from tests.resilience.invariants import missing_posts, violations

WRITERS = 8
KILLS = 5
# Answers between two kills before the next one may come; the kill then lands a random
# few milliseconds later, in the middle of whatever requests are running.
ANSWERS_BETWEEN_KILLS = 15


@dataclass
class Tally:
    sent: int = 0
    answered: int = 0
    replayed: int = 0
    cut: int = 0
    stale_marks: int = 0
    kills: int = 0
    posts: dict[str, str] = field(default_factory=dict)  # key -> id answered
    comments: dict[str, str] = field(default_factory=dict)
    likes: int = 0


class Crashes:
    """The server under test, the writers' shared state, and the kills."""

    def __init__(self, env: dict[str, str], database_url: str, workers: int) -> None:
        self.env = env
        self.database_url = database_url
        self.workers = workers
        self.server = self._start()
        self.up = asyncio.Event()
        self.up.set()
        self.answered = asyncio.Condition()
        self.stop = asyncio.Event()
        self.tally = Tally()
        # On SQLite, the test's own writes (ageing a mark) wait for the server's like its writers do.
        sqlite = database_url.startswith("sqlite")
        self.engine = create_async_engine(database_url, connect_args={"timeout": 30} if sqlite else {})

    def _start(self) -> Server:
        args = ("--workers", str(self.workers)) if self.workers > 1 else ()
        server = Server(self.env, *args)
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    async def age_mark(self, key: str) -> None:
        """Move the key's in-progress mark 61 s into the past: the 60 s wait, without waiting."""
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(IdempotencyKey)
                .where(IdempotencyKey.key == key, IdempotencyKey.state == "in_progress")
                .values(updated_at=datetime.now(UTC) - timedelta(seconds=61))
            )
        assert getattr(result, "rowcount", 1) == 1

    async def send(
        self, client: httpx.AsyncClient, path: str, headers: dict[str, str], body: Any, key: str | None
    ) -> httpx.Response:
        """POST until answered; a request cut by a kill is retried with the same key."""
        cut = aged = False
        while True:
            await self.up.wait()
            request_headers = headers if key is None else {**headers, "Idempotency-Key": key}
            self.tally.sent += 1
            try:
                response = await client.post(f"{self.server.base}{path}", json=body, headers=request_headers)
            except httpx.TransportError:
                self.tally.cut += 1
                cut, aged = True, False
                continue
            if response.status_code == 409 and response.json().get("code") == "idempotency_in_progress":
                # Only this writer uses the key, and its last attempt died with the worker.
                assert cut, response.text
                # Once 60 s old, the mark is taken over by the next attempt.
                assert not aged, "a mark left by a killed worker was not taken over after 60 s"
                self.tally.stale_marks += 1
                assert key is not None
                await self.age_mark(key)
                aged = True
                continue
            assert response.status_code in (200, 201), response.text
            if response.headers.get("Idempotent-Replayed") == "true":
                self.tally.replayed += 1
            async with self.answered:
                self.tally.answered += 1
                self.answered.notify_all()
            return response

    async def writer(self, number: int, headers: dict[str, str]) -> None:
        own: list[str] = []
        n = 0
        async with httpx.AsyncClient(timeout=30) as client:
            while not self.stop.is_set():
                key = f"crash-{number}-{n}"
                body = {"content": key, "visibility": "public"}
                post = await self.send(client, f"{API}/posts", headers, body, key)
                self.tally.posts[key] = post.json()["id"]
                own.append(post.json()["id"])
                target = random.choice(own)
                comment_key = f"comment-{number}-{n}"
                comment = await self.send(
                    client, f"{API}/posts/{target}/comments", headers, {"content": comment_key}, comment_key
                )
                self.tally.comments[comment_key] = comment.json()["id"]
                await self.send(client, f"{API}/posts/{random.choice(own)}/like", headers, None, None)
                self.tally.likes += 1
                n += 1

    async def kill(self) -> None:
        """kill -9 a worker mid-writes, and have it replaced."""
        async with self.answered:
            goal = self.tally.answered + ANSWERS_BETWEEN_KILLS
            await self.answered.wait_for(lambda: self.tally.answered >= goal)
        await asyncio.sleep(random.uniform(0, 0.03))  # a random moment among the requests
        # The worker holding the most writers' connections (so the kill cuts requests).
        held = self.server.connections_by_worker()
        victim = max(held, key=lambda pid: (len(held[pid]), random.random()))
        if self.workers == 1:
            self.up.clear()
            os.kill(victim, signal.SIGKILL)
            await asyncio.to_thread(self.server.process.wait, 10)
            self.server = await asyncio.to_thread(self._start)
            self.up.set()
        else:
            os.kill(victim, signal.SIGKILL)
            await asyncio.to_thread(self._replaced, victim)
        self.tally.kills += 1

    def _replaced(self, victim: int) -> None:
        """Wait for the supervisor to start a worker in the killed one's place."""
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        while True:
            workers: list[int] = []
            with contextlib.suppress(OSError):  # a process that ends while /proc is read
                workers = self.server.workers()
            if len(workers) == self.workers and victim not in workers:
                self.server.wait_ready()
                return
            assert datetime.now(UTC) < deadline, "the killed worker was not replaced"
            time.sleep(0.05)  # /proc has no event to await

    async def run(self) -> Tally:
        async with httpx.AsyncClient(base_url=self.server.base, timeout=30) as client:
            accounts = [await account(client, f"writer{n}") for n in range(WRITERS)]
        writers = [asyncio.create_task(self.writer(n, headers)) for n, headers in enumerate(accounts)]
        killer = asyncio.create_task(self.kills())
        tasks = [killer, *writers]
        try:
            # The kills are done, or a writer failed (writers end only when told to): a
            # failure ends the test at once rather than leaving the killer waiting.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                if task.done():
                    task.result()
            self.stop.set()
            await asyncio.gather(*writers)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return self.tally

    async def kills(self) -> None:
        for _ in range(KILLS):
            await self.kill()

    async def close(self) -> None:
        await asyncio.to_thread(self.server.stop)
        await self.engine.dispose()

    async def rows_per_marker(self, model: type[Post] | type[Comment]) -> dict[str, list[str]]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(model.content, model.id))
        found: dict[str, list[str]] = {}
        for content, row_id in rows:
            found.setdefault(content, []).append(str(row_id))
        return found

    async def like_count(self) -> int:
        async with self.engine.connect() as connection:
            return int(await connection.scalar(select(func.sum(Post.like_count))) or 0)


async def crash_and_check(env: dict[str, str], database_url: str, media_root: Path, workers: int) -> None:
    crashes = Crashes(env, database_url, workers)
    try:
        tally = await crashes.run()
    finally:
        await crashes.close()

    assert tally.kills == KILLS
    assert tally.cut >= KILLS  # every kill cut requests in flight
    # Each answered create is there, once, with the id it was answered with.
    assert await missing_posts(database_url, tally.posts.values()) == []
    posts = await crashes.rows_per_marker(Post)
    assert {key: posts.get(key) for key in tally.posts} == {key: [i] for key, i in tally.posts.items()}
    assert sum(len(ids) for ids in posts.values()) == len(tally.posts)
    comments = await crashes.rows_per_marker(Comment)
    expected = {key: [i] for key, i in tally.comments.items()}
    assert {key: comments.get(key) for key in tally.comments} == expected
    assert sum(len(ids) for ids in comments.values()) == len(tally.comments)
    found = await violations(database_url, media_root)
    print(
        f"\nkill -9 x{tally.kills} ({workers} worker(s)): {tally.sent} requests sent, {tally.answered} "
        f"answered ({len(tally.posts)} posts, {len(tally.comments)} comments, {tally.likes} likes), "
        f"{tally.cut} cut by a kill and retried, {tally.replayed} replayed, {tally.stale_marks} "
        f"left in progress by a killed worker (409, aged), {len(found)} violations"
    )
    assert found == []


@pytest.mark.timeout(90)
async def test_kill_9_of_sqlite_server_during_writes_loses_nothing(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path, KITH_RATE_LIMITS_ENABLED="false")
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'kith.db'}"
    await crash_and_check(env, database_url, tmp_path / "var" / "media", workers=1)


@pytest.fixture
def postgres_database(request: pytest.FixtureRequest) -> str:
    if not (postgres_available() and redis_available()):
        pytest.skip("needs PostgreSQL and Redis (required, and never skipped, with CI=true)")
    database_url: str = request.getfixturevalue("postgres_url")
    asyncio.run(empty_postgres(database_url))
    return database_url


@pytest.mark.timeout(90)
async def test_kill_9_of_a_postgres_worker_during_writes_loses_nothing(
    postgres_database: str, tmp_path: Path
) -> None:
    env = base_env(
        tmp_path,
        KITH_DATABASE_URL=postgres_database,
        KITH_REDIS_URL=REDIS_URL,
        KITH_FEED_TIMELINES="true",  # the timelines' fan-out too
        KITH_JOB_BACKEND="memory",
        KITH_RATE_LIMITS_ENABLED="false",
    )
    await crash_and_check(env, postgres_database, tmp_path / "var" / "media", workers=2)
