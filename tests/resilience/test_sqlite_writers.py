"""16 concurrent writers for a minute through a real `kith serve` on the embedded SQLite.

SQLite has one writer at a time: Kith's write transactions take the lock up front
(`BEGIN IMMEDIATE`) and wait for it (busy timeout). Under a minute of 16 clients that
never pause, no client may see a 5xx or "database is locked", every post answered 201
must exist, and the invariants must hold. The test prints the writes made and the
latencies seen.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import API
from tests.processes import account, running, sqlite_env
from tests.resilience.invariants import missing_posts, violations

WRITERS = 16
SECONDS = 60.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@pytest.mark.timeout(150)
async def test_sixteen_sqlite_writers_for_a_minute_never_see_a_5xx_or_a_locked_database(
    tmp_path: Path,
) -> None:
    env = sqlite_env(tmp_path, KITH_RATE_LIMITS_ENABLED="false")
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'kith.db'}"
    latencies: list[float] = []
    failures: list[str] = []
    statuses: dict[int, int] = {}
    posts: list[str] = []
    with running(env) as server:
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:
            users = [await account(client, f"writer{n}") for n in range(WRITERS)]
        end = time.monotonic() + SECONDS

        async def write(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
            began = time.monotonic()
            response = await client.request(method, path, **kwargs)
            latencies.append(time.monotonic() - began)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500 or "database is locked" in response.text.lower():
                failures.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
            return response

        async def writer(number: int) -> None:
            headers = users[number]
            n = 0
            async with httpx.AsyncClient(base_url=server.base, timeout=60) as client:
                while time.monotonic() < end:
                    key = f"w{number}-{n}"
                    created = await write(
                        client,
                        "POST",
                        f"{API}/posts",
                        json={"content": key, "visibility": "public"},
                        headers={**headers, "Idempotency-Key": key},
                    )
                    if created.status_code == 201:
                        posts.append(created.json()["id"])
                    if posts:
                        target = random.choice(posts)
                        await write(
                            client,
                            "POST",
                            f"{API}/posts/{target}/comments",
                            json={"content": f"on {key}"},
                            headers={**headers, "Idempotency-Key": f"c{key}"},
                        )
                        method = random.choice(("POST", "DELETE"))
                        liked = random.choice(posts)
                        await write(client, method, f"{API}/posts/{liked}/like", headers=headers)
                    n += 1

        began = time.monotonic()
        await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        took = time.monotonic() - began

    found = await violations(database_url, tmp_path / "var" / "media")
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    print(
        f"\n{WRITERS} SQLite writers for {took:.1f} s: {len(latencies)} writes "
        f"({len(latencies) / took:.0f}/s, {len(posts)} posts), statuses {dict(sorted(statuses.items()))}, "
        f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms, "
        f"{len(failures)} 5xx or locked, {len(found)} violations"
    )
    assert failures == []
    assert set(statuses) <= {200, 201, 204}, statuses
    assert await missing_posts(database_url, posts) == []
    assert found == []
