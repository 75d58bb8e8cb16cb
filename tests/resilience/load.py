"""Steady API load against a real server while a test injects faults, with every answer kept.

Each answer records the fault phase its request started in and the one it ended in, so a
test can hold the answers given entirely while a dependency was down to one rule and
those that straddled a change of phase to a looser one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx

from tests.helpers import API

# Words that would mean a driver's or the database's text reached the client.
LEAK_MARKERS = (
    "select ",
    "insert ",
    "update ",
    "sqlalchemy",
    "asyncpg",
    "psycopg",
    "traceback",
    "redis.",
    "errno",
)


@dataclass(frozen=True)
class Answer:
    kind: str
    started_in: str
    ended_in: str
    status: int  # 0: the request itself failed (timeout, connection refused)
    code: str | None
    retry_after: str | None
    body: str
    seconds: float
    post_id: str | None


class Load:
    """`workers` loops per account: create a post, comment on it, read /users/me and /feed."""

    def __init__(self, base: str, accounts: list[dict[str, str]], *, timeout: float = 30.0) -> None:
        self.base = base
        self.accounts = accounts
        self.timeout = timeout
        self.phase = "up"
        self.answers: list[Answer] = []
        self._changed = asyncio.Condition()
        self._stop = asyncio.Event()

    def set_phase(self, phase: str) -> None:
        self.phase = phase

    async def wait_for(self, predicate: Callable[[list[Answer]], bool], timeout: float = 30.0) -> None:
        """Until `predicate(answers)` holds; fails after `timeout` seconds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self.answers))

    async def wait_answers(self, phase: str, count: int, timeout: float = 30.0) -> None:
        """Until `count` answers were both started and ended in `phase`."""
        await self.wait_for(lambda answers: len(self.within(phase)) >= count, timeout)

    async def wait_more(self, count: int, timeout: float = 30.0) -> None:
        """Until `count` more answers arrived."""
        target = len(self.answers) + count
        await self.wait_for(lambda answers: len(answers) >= target, timeout)

    async def wait_success(self, phase: str, kind: str, timeout: float = 30.0) -> None:
        """Until a request of `kind` started and ended in `phase` succeeded."""
        await self.wait_for(
            lambda _: any(a.kind == kind and 200 <= a.status < 300 for a in self.within(phase)), timeout
        )

    def within(self, phase: str) -> list[Answer]:
        return [a for a in self.answers if a.started_in == phase and a.ended_in == phase]

    def posts_created(self) -> list[str]:
        return [a.post_id for a in self.answers if a.post_id is not None]

    async def _record(self, answer: Answer) -> None:
        async with self._changed:
            self.answers.append(answer)
            self._changed.notify_all()

    async def _request(
        self,
        client: httpx.AsyncClient,
        kind: str,
        method: str,
        path: str,
        headers: dict[str, str],
        **kw: object,
    ) -> httpx.Response | None:
        started_in = self.phase
        began = time.monotonic()
        response: httpx.Response | None
        try:
            response = await client.request(method, f"{API}{path}", headers=headers, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError:
            response = None
        seconds = time.monotonic() - began
        status = 0 if response is None else response.status_code
        code = None
        post_id = None
        if response is not None and response.headers.get("content-type") == "application/problem+json":
            code = response.json().get("code")
        if kind == "post" and status == 201 and response is not None:
            post_id = response.json()["id"]
        await self._record(
            Answer(
                kind=kind,
                started_in=started_in,
                ended_in=self.phase,
                status=status,
                code=code,
                retry_after=None if response is None else response.headers.get("retry-after"),
                body="" if response is None else response.text,
                seconds=seconds,
                post_id=post_id,
            )
        )
        return response

    async def _loop(self, client: httpx.AsyncClient, number: int, headers: dict[str, str]) -> None:
        step = 0
        last_post: str | None = None
        while not self._stop.is_set():
            step += 1
            created = await self._request(
                client, "post", "POST", "/posts", headers, json={"content": f"load {number}.{step}"}
            )
            if created is not None and created.status_code == 201:
                last_post = created.json()["id"]
            if last_post is not None:
                await self._request(
                    client, "comment", "POST", f"/posts/{last_post}/comments", headers, json={"content": "ok"}
                )
            await self._request(client, "me", "GET", "/users/me", headers)
            await self._request(client, "feed", "GET", "/feed?limit=10", headers)

    @contextlib.asynccontextmanager
    async def running(self, workers_per_account: int = 1) -> AsyncIterator[Load]:
        async with httpx.AsyncClient(base_url=self.base, timeout=self.timeout) as client:
            tasks = [
                asyncio.create_task(self._loop(client, number, headers))
                for number, headers in enumerate(self.accounts * workers_per_account)
            ]
            try:
                yield self
            finally:
                self._stop.set()
                results = await asyncio.gather(*tasks, return_exceptions=True)
                for result in results:
                    if isinstance(result, BaseException):
                        raise result


def leaks(answer: Answer) -> list[str]:
    """Internal words found in an answer's body."""
    body = answer.body.lower()
    return [marker for marker in LEAK_MARKERS if marker in body]


def p99(seconds: list[float]) -> float:
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
