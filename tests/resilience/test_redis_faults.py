"""Redis failing under running `kith serve` processes: killed and restarted, and frozen.

Each test runs its own redis-server (tests/resilience/services.py), which it kills or
SIGSTOPs; PostgreSQL is the shared server, in this session's own database.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from redis.asyncio import Redis

from tests.conftest import empty_postgres
from tests.helpers import API
from tests.processes import PASSWORD, Server, account, base_env, migrate, running
from tests.resilience.invariants import missing_posts, violations
from tests.resilience.load import Load, p99
from tests.resilience.services import PrivateRedis, eventually, private_redis, require_services

REGISTER_LIMIT = 7
LOGIN_LIMIT = 6
GENERAL_LIMIT = 50
REDIS_RETRY = 1.0
REDIS_TIMEOUT = 0.5  # KITH_RATE_LIMIT_REDIS_TIMEOUT_SECONDS, its default
CLIENT_TIMEOUT = 2.0  # socket timeout of the Redis client for cache, health and live events
# Beyond the timeout itself: the slowest request during a freeze was seen 5-10 ms above
# it (p99 before a freeze: 5-25 ms). The rest allows for other test runs on this shared
# 2-core machine delaying a process by a scheduler slice or two, without allowing
# a second timeout (0.5 s) or Redis's own 2 s one.
MARGIN = 0.25
SAMPLES = 200


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    require_services()
    with private_redis() as server:
        yield server


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(empty_postgres(url))
    return url


async def _wait_ready(base: str, redis: str, timeout: float = 20) -> None:
    """Until `base`'s /readyz reports Redis as `redis` ("ok" or "failed")."""
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:

        async def reported() -> bool:
            return bool((await client.get("/readyz")).json()["checks"]["redis"] == redis)

        await eventually(reported, timeout)


async def _subscribers(redis_url: str, channel: str) -> int:
    client = Redis.from_url(redis_url, socket_timeout=2)
    try:
        counts = await client.pubsub_numsub(channel)
    finally:
        await client.aclose()
    return int(counts[0][1])


async def _next_notification(
    ws: websockets.ClientConnection, post_id: str, timeout: float
) -> dict[str, object]:
    """The next `notification` event about `post_id` (skipping unread counts)."""
    async with asyncio.timeout(timeout):
        while True:
            event: dict[str, object] = json.loads(await ws.recv())
            data = event.get("data")
            if event["event"] == "notification" and isinstance(data, dict) and data.get("post_id") == post_id:
                return event


async def _register(client: httpx.AsyncClient, name: str) -> int:
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    return (await client.post(f"{API}/auth/register", json=body)).status_code


async def _login(client: httpx.AsyncClient, name: str) -> httpx.Response:
    return await client.post(f"{API}/auth/login", json={"username": name, "password": PASSWORD})


@pytest.mark.timeout(120)
async def test_redis_killed_and_restarted(
    redis_server: PrivateRedis, database_url: str, tmp_path: Path
) -> None:
    env = base_env(
        tmp_path,
        KITH_DATABASE_URL=database_url,
        KITH_REDIS_URL=redis_server.url,
        KITH_JOB_BACKEND="memory",
        KITH_RATE_LIMIT_GENERAL=f"{GENERAL_LIMIT}/minute",
        KITH_RATE_LIMIT_LOGIN=f"{LOGIN_LIMIT}/minute",
        KITH_RATE_LIMIT_REGISTER=f"{REGISTER_LIMIT}/hour",
        KITH_REDIS_RETRY_SECONDS=str(REDIS_RETRY),
    )
    migrate(env)
    first, second = Server(env), Server(env)
    try:
        first.wait_ready(redis=True)
        second.wait_ready(redis=True)
        async with (
            httpx.AsyncClient(base_url=first.base, timeout=30) as one,
            httpx.AsyncClient(base_url=second.base, timeout=30) as two,
        ):
            author = await account(one, "author")
            fan = await account(one, "fan")
            probe = await account(one, "probe")
            loaders = [await account(one, f"loader{n}") for n in range(2)]
            author_id = (await one.get(f"{API}/users/me", headers=author)).json()["id"]
            posts = []
            for n in range(3):
                created = await one.post(
                    f"{API}/posts", json={"content": f"post {n}", "visibility": "public"}, headers=author
                )
                assert created.status_code == 201
                posts.append(created.json()["id"])

            # The author's socket lives on the second process; likes are served by the first.
            url = f"{second.ws_base}{API}/stream"
            load = Load(first.base, loaders)
            async with load.running(), websockets.connect(url, additional_headers=author) as ws:
                assert json.loads(await ws.recv())["event"] == "unread_count"
                assert (await one.post(f"{API}/posts/{posts[0]}/like", headers=fan)).status_code == 201
                await _next_notification(ws, posts[0], timeout=5)

                await load.wait_answers("up", 20)
                # Redis dies.
                load.set_phase("killed")
                redis_server.kill()
                for base in (first.base, second.base):
                    await _wait_ready(base, "failed")
                load.set_phase("down")
                ready = await one.get("/readyz")
                assert ready.status_code == 200 and ready.json()["status"] == "degraded"

                # The API keeps answering, and the notification is stored.
                assert (await one.post(f"{API}/posts/{posts[1]}/like", headers=fan)).status_code == 201
                listed = await two.get(f"{API}/notifications", headers=author)
                assert listed.status_code == 200
                liked = {item["post_id"] for item in listed.json()["items"] if item["type"] == "post_liked"}
                assert liked == {posts[0], posts[1]}
                during = await one.post(
                    f"{API}/posts", json={"content": "while Redis is down"}, headers=author
                )
                assert during.status_code == 201
                posts.append(during.json()["id"])
                assert (await two.get(f"{API}/feed", headers=fan)).status_code == 200

                # The general limit fails open: more requests than it allows all pass.
                general = [
                    (await one.get(f"{API}/users/me", headers=probe)).status_code
                    for _ in range(GENERAL_LIMIT + 10)
                ]
                assert set(general) == {200}

                # Registration and login fall back to per-process counting: a process
                # refuses past the limit, the other still has its own budget.
                registered = [await _register(one, f"down{n}") for n in range(REGISTER_LIMIT + 1)]
                assert registered == [201] * REGISTER_LIMIT + [429]
                assert await _register(two, "downother") == 201
                logins = [await _login(one, "probe") for _ in range(LOGIN_LIMIT + 1)]
                assert [r.status_code for r in logins] == [200] * LOGIN_LIMIT + [429]
                assert int(logins[-1].headers["retry-after"]) >= 1
                assert (await _login(two, "probe")).status_code == 200

                # Redis comes back (empty: it keeps nothing on disk).
                await load.wait_answers("down", 20)
                load.set_phase("restarting")
                redis_server.start()
                restarted = time.monotonic()
                load.set_phase("back")
                for base in (first.base, second.base):
                    await _wait_ready(base, "ok")
                # The second process subscribes to the author's channel again by itself...
                channel = f"kith:user:{author_id}"

                async def subscribed() -> bool:
                    return await _subscribers(redis_server.url, channel) >= 1

                await eventually(subscribed, timeout=20)
                # ...and, once the first process tries Redis again (its breaker stays open
                # KITH_REDIS_RETRY_SECONDS after its last failure, before the restart: no
                # event marks the end of that wait), the socket opened before the outage
                # gets live events again.
                await asyncio.sleep(max(0.0, REDIS_RETRY - (time.monotonic() - restarted)))
                assert (await one.post(f"{API}/posts/{posts[2]}/like", headers=fan)).status_code == 201
                await _next_notification(ws, posts[2], timeout=5)
                await load.wait_answers("back", 20)

            # Limits count in Redis again: the general limit bites once more. The limiter
            # leaves Redis alone for KITH_RATE_LIMIT_REDIS_RETRY_SECONDS after a failure.
            async with asyncio.timeout(30):
                statuses: list[int] = []
                while 429 not in statuses:
                    statuses.append((await two.get(f"{API}/users/me", headers=probe)).status_code)
            assert set(statuses) == {200, 429}
    finally:
        first.stop()
        second.stop()

    answers = load.answers
    by_phase = collections.Counter((a.started_in, a.status) for a in answers)
    slowest = max(a.seconds for a in answers)
    print(f"\nload: {len(answers)} answers, slowest {slowest:.3f} s, by (phase, status): {dict(by_phase)}")
    # The API kept answering throughout: successes, or the general limit's 429 while
    # Redis counts (it fails open while Redis is away); never a 5xx, never a hang.
    assert {a.status for a in answers} <= {200, 201, 429}
    assert all(a.code == "rate_limited" for a in answers if a.status == 429)
    assert {a.status for a in load.within("down")} <= {200, 201}
    assert slowest < REDIS_TIMEOUT + MARGIN
    assert await missing_posts(database_url, [*posts, *load.posts_created()]) == []
    assert await violations(database_url, tmp_path / "var" / "media") == []


async def _timed(
    client: httpx.AsyncClient, method: str, path: str, **kw: object
) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    response = await client.request(method, path, **kw)  # type: ignore[arg-type]
    return response, time.perf_counter() - began


async def _me_latencies(client: httpx.AsyncClient, headers: dict[str, str]) -> list[float]:
    latencies = []
    for _ in range(SAMPLES):
        response, seconds = await _timed(client, "GET", f"{API}/users/me", headers=headers)
        assert response.status_code == 200
        latencies.append(seconds)
    return latencies


@pytest.mark.timeout(120)
async def test_redis_frozen(redis_server: PrivateRedis, database_url: str, tmp_path: Path) -> None:
    env = base_env(
        tmp_path,
        KITH_DATABASE_URL=database_url,
        KITH_REDIS_URL=redis_server.url,
        KITH_FEED_TIMELINES="true",  # every use of Redis, the feed's timelines included
        KITH_JOB_BACKEND="redis",
        KITH_RATE_LIMIT_GENERAL="100000/minute",
        KITH_RATE_LIMIT_REDIS_TIMEOUT_SECONDS=str(REDIS_TIMEOUT),
        # Both breakers stay open longer than the whole freeze, so what each request
        # pays is known: with the limiter's default 5 s, whichever request came 5 s
        # after the first failure paid its timeout once more.
        KITH_REDIS_RETRY_SECONDS="30",
        KITH_RATE_LIMIT_REDIS_RETRY_SECONDS="30",
    )
    migrate(env)
    with running(env, redis=True) as server:
        async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
            author = await account(client, "author")
            fan = await account(client, "fan")
            created = await client.post(
                f"{API}/posts", json={"content": "hi", "visibility": "public"}, headers=author
            )
            post_id = created.json()["id"]
            assert (
                await client.get(f"{API}/feed", headers=author)
            ).status_code == 200  # the timeline is warm
            before = await _me_latencies(client, author)

            redis_server.freeze()
            try:
                during = await _me_latencies(client, author)
                timings = {}
                ready, timings["readyz"] = await _timed(client, "GET", "/readyz")
                feed, timings["feed"] = await _timed(client, "GET", f"{API}/feed", headers=author)
                # The feed's failure opened the breaker (KITH_REDIS_RETRY_SECONDS): what
                # follows skips Redis at once instead of waiting for its timeout again.
                again, timings["feed again"] = await _timed(client, "GET", f"{API}/feed", headers=author)
                post, timings["post"] = await _timed(
                    client, "POST", f"{API}/posts", json={"content": "frozen"}, headers=author
                )
                like, timings["like"] = await _timed(
                    client, "POST", f"{API}/posts/{post_id}/like", headers=fan
                )
                listed, timings["notifications"] = await _timed(
                    client, "GET", f"{API}/notifications", headers=author
                )
            finally:
                redis_server.thaw()

            url = f"{server.ws_base}{API}/stream"
            async with websockets.connect(url, additional_headers=author) as ws:
                assert json.loads(await ws.recv())["event"] == "unread_count"
                second = await client.post(
                    f"{API}/posts", json={"content": "after", "visibility": "public"}, headers=author
                )
                assert (
                    await client.post(f"{API}/posts/{second.json()['id']}/like", headers=fan)
                ).status_code == 201
                await _next_notification(ws, second.json()["id"], timeout=5)

    before_p99, during_p99 = p99(before), p99(during)
    print(
        f"\nGET /users/me over {SAMPLES} requests: p99 {before_p99 * 1000:.1f} ms before the freeze,",
        f"{during_p99 * 1000:.1f} ms during it (max {max(during) * 1000:.1f} ms);",
        "during the freeze: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items()),
    )
    # A frozen Redis costs a request at most the limiter's timeout, and only now and then.
    assert during_p99 - before_p99 < REDIS_TIMEOUT + MARGIN
    assert max(during) - before_p99 < REDIS_TIMEOUT + MARGIN
    # Every other use of Redis gives up after its own timeout: nothing hangs.
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "failed"
    assert timings["readyz"] < CLIENT_TIMEOUT + MARGIN
    assert feed.status_code == 200 and timings["feed"] < CLIENT_TIMEOUT + MARGIN
    # Both breakers are open now: these skip Redis at once, paying neither the limiter's
    # timeout nor Redis's 2 s or the job queue's 5 s (without the breaker: 2.0 s, 5.0 s
    # and 4.5 s).
    assert again.status_code == 200 and timings["feed again"] < MARGIN
    assert post.status_code == 201 and timings["post"] < MARGIN
    assert like.status_code == 201 and timings["like"] < MARGIN
    assert listed.status_code == 200 and timings["notifications"] < MARGIN
    assert any(item["post_id"] == post_id for item in listed.json()["items"])
    assert await missing_posts(database_url, [post_id, post.json()["id"]]) == []
    assert await violations(database_url, tmp_path / "var" / "media") == []


async def _feed(client: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    response = await client.get(f"{API}/feed", params={"limit": 100}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return [item["id"] for item in response.json()["items"]]


async def _post(client: httpx.AsyncClient, headers: dict[str, str], content: str) -> str:
    created = await client.post(
        f"{API}/posts", json={"content": content, "visibility": "public"}, headers=headers
    )
    assert created.status_code == 201, created.text
    post_id: str = created.json()["id"]
    return post_id


async def _timeline(redis_url: str, user_id: str) -> tuple[list[str], bool]:
    """The user's timeline as Redis holds it, newest first, and whether it is trusted
    (its warm marker holds the current epoch, kith.feed.timeline)."""
    client = Redis.from_url(redis_url, socket_timeout=2, decode_responses=True)
    try:
        ids = await client.zrange(f"kith:tl:{user_id}", 0, -1, desc=True)
        marker = await client.get(f"kith:tl:{user_id}:warm")
        epoch = await client.get("kith:jobs:timelines:epoch")
    finally:
        await client.aclose()
    return [str(value) for value in ids], marker is not None and marker == epoch


@pytest.mark.timeout(120)
async def test_timeline_writes_lost_in_a_freeze_are_repaired(
    redis_server: PrivateRedis, database_url: str, tmp_path: Path
) -> None:
    """A fan-out and a new friendship's drop give up while Redis is frozen, in one process;
    another process serves the reader's feed from Redis. Once Redis is back, that feed and
    the timeline Redis holds equal the feed of a process without Redis, lost post included."""
    env = base_env(
        tmp_path,
        KITH_DATABASE_URL=database_url,
        KITH_REDIS_URL=redis_server.url,
        KITH_FEED_TIMELINES="true",
        KITH_JOB_BACKEND="memory",  # the fan-out runs in the process that took the post
        KITH_JOB_MAX_ATTEMPTS="2",
        KITH_JOB_RETRY_BASE_SECONDS="0.1",
        KITH_JOB_RETRY_MAX_SECONDS="0.2",
        KITH_RATE_LIMIT_GENERAL="100000/minute",
        KITH_REDIS_RETRY_SECONDS=str(REDIS_RETRY),
    )
    sql_env = {k: v for k, v in env.items() if k not in ("KITH_REDIS_URL", "KITH_JOB_BACKEND")}
    migrate(env)
    writer, reader, sql = Server(env), Server(env), Server(sql_env)
    try:
        writer.wait_ready(redis=True)
        reader.wait_ready(redis=True)
        sql.wait_ready()
        async with (
            httpx.AsyncClient(base_url=writer.base, timeout=30) as writes,
            httpx.AsyncClient(base_url=reader.base, timeout=30) as reads,
            httpx.AsyncClient(base_url=sql.base, timeout=30) as plain,
        ):
            author, fan, other = [await account(writes, name) for name in ("author", "fan", "other")]
            ids = {}
            for name, headers in (("author", author), ("fan", fan), ("other", other)):
                ids[name] = (await writes.get(f"{API}/users/me", headers=headers)).json()["id"]

            async def befriend(sender: dict[str, str], receiver: str, accepter: dict[str, str]) -> None:
                body = {"receiver_id": ids[receiver]}
                request = await writes.post(f"{API}/friend-requests", json=body, headers=sender)
                assert request.status_code == 201, request.text
                accepted = await writes.patch(
                    f"{API}/friend-requests/{request.json()['id']}",
                    json={"action": "accept"},
                    headers=accepter,
                )
                assert accepted.status_code == 200, accepted.text

            await befriend(author, "fan", fan)
            first = await _post(writes, author, "first")
            others = await _post(writes, other, "not yet the fan's friend")
            second = await _post(writes, author, "second")

            # The fan reads through the second process: the timeline is built and warm
            # (read again, should the friendship's job have dropped it after it was built).
            async def warm() -> bool:
                served = await _feed(reads, fan)
                timeline, trusted = await _timeline(redis_server.url, ids["fan"])
                return served == timeline == [second, first] and trusted

            await eventually(warm, timeout=10, interval=0.25)

            redis_server.freeze()
            try:
                await befriend(fan, "other", other)
                lost = await _post(writes, author, "during the freeze")
                # Long enough for both jobs to give up while Redis is still frozen: two
                # attempts (KITH_JOB_MAX_ATTEMPTS) of at most the 2 s client timeout each.
                await asyncio.sleep(2 * CLIENT_TIMEOUT + 1)
            finally:
                redis_server.thaw()

            expected = [lost, second, others, first]
            assert await _feed(plain, fan) == expected

            async def repaired() -> bool:
                served = await _feed(reads, fan)
                timeline, trusted = await _timeline(redis_server.url, ids["fan"])
                return served == expected and timeline == expected and trusted

            with contextlib.suppress(TimeoutError):
                await eventually(repaired, timeout=15, interval=0.25)
            assert await _feed(reads, fan) == expected, "the feed served from Redis has a gap"
            timeline, trusted = await _timeline(redis_server.url, ids["fan"])
            assert timeline == expected and trusted
            assert await _feed(reads, fan) == await _feed(plain, fan)
            assert await _feed(writes, fan) == expected
    finally:
        writer.stop()
        reader.stop()
        sql.stop()
    assert await missing_posts(database_url, [first, others, second, lost]) == []
    assert await violations(database_url, tmp_path / "var" / "media") == []
