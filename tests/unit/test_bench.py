"""The benchmark suite's own pieces, in a few milliseconds (no server, no load)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
import pytest

from bench import ceiling, profiling, report, wrk
from bench.prepare import LoadData
from bench.run import BY_KEY, CONFIGS, PROFILES, ROUND_TRIP_CEILINGS
from tests.helpers import API, signup

SAMPLE = (
    "Running 3s test @ http://127.0.0.1:18601\n"
    "  1 threads and 8 connections\n"
    'BENCH_RESULT {"duration_us":3004123,"requests":3000,"bytes":123456,"p50_us":2500,"p90_us":4000,'
    '"p99_us":9100,"max_us":15000,"mean_us":2700.5,"errors":{"connect":0,"read":0,"write":0,"status":3,'
    '"timeout":1},"statuses":{"200":2990,"201":7,"409":3},"pairs_exhausted":0}\n'
)


async def test_ceiling_answers_twenty_posts() -> None:
    transport = httpx.ASGITransport(app=ceiling.create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        response = await client.get(f"{API}/feed")
    assert response.status_code == 200
    body = response.json()
    assert len(body["items"]) == 20
    assert set(body["items"][0]) >= {"id", "author", "content", "like_count", "liked_by_me", "created_at"}


def test_wrk_result_line_is_parsed() -> None:
    result = wrk.parse_output(SAMPLE)
    assert result.requests == 3000
    assert result.rps == pytest.approx(3000 / 3.004123)
    assert (result.p50_ms, result.p99_ms) == (2.5, 9.1)
    assert result.statuses == {200: 2990, 201: 7, 409: 3}
    # A 409 where only 200 and 201 are expected, plus one timeout.
    assert result.unexpected(frozenset({200, 201})) == 4


def test_wrk_output_without_a_result_is_an_error() -> None:
    with pytest.raises(ValueError, match="BENCH_RESULT"):
        wrk.parse_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_load_data_file_uses_lua_indexes(tmp_path: Path) -> None:
    data = LoadData(
        tokens=[("t0", "u0"), ("t1", "u1")],
        posts=[(1, "p1")],
        cursors=[(0, "c0")],
        pairs=[(0, 1, "u1")],
        logins=["user7"],
    )
    lines = data.write(tmp_path / "data.tsv").read_text().splitlines()
    assert lines == ["T\tt0\tu0", "T\tt1\tu1", "P\t2\tp1", "C\t1\tc0", "F\t1\t2\tu1", "L\tuser7"]


def test_profiles_and_configurations_are_consistent() -> None:
    assert {"quick", "full"} <= set(PROFILES)
    assert PROFILES["full"].data.posts == 1_000_000
    assert PROFILES["full"].growth_posts == 100_000
    for config in CONFIGS:
        assert set(config.scenarios) <= set(BY_KEY)
    assert set(report.LABELS) - {"ceiling", *ROUND_TRIP_CEILINGS} == set(BY_KEY)


@pytest.mark.postgres_only  # the round-trip ceiling drives asyncpg
async def test_round_trip_ceiling_runs_kiths_feed_statements(
    client: httpx.AsyncClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = await signup(client, "user1")
    friend = await signup(client, "user2")
    request = await client.post(
        f"{API}/friend-requests", json={"receiver_id": friend.id}, headers=reader.headers
    )
    await client.patch(
        f"{API}/friend-requests/{request.json()['id']}", json={"action": "accept"}, headers=friend.headers
    )
    post = await client.post(f"{API}/posts", json={"content": "from a friend"}, headers=friend.headers)
    await client.post(f"{API}/posts/{post.json()['id']}/like", headers=reader.headers)

    statements = await ceiling.kith_statements(database_url, "user1")
    connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        session, feed = [await connection.fetch(sql, *args) for sql, args in statements]
    finally:
        await connection.close()
    # The same answers Kith's own execution gives: the reader's live session; the friend's
    # post in the feed with its author, liked by the reader, without media.
    assert [row["username"] for row in session] == ["user1"]
    assert [(row["id"], row["content"], row["username"]) for row in feed] == [
        (post.json()["id"], "from a friend", "user2")
    ]
    assert [(row["liked_by_me"], row["media_id"]) for row in feed] == [(True, None)]

    monkeypatch.setenv("BENCH_CEILING_DATABASE_URL", database_url)
    app = ceiling.create_round_trip_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as bench:
            response = await bench.get(f"{API}/feed")
    assert response.status_code == 200
    assert len(response.json()["items"]) == 20


def test_profile_summary_counts_samples_by_function() -> None:
    # py-spy's raw format; a frame of generated code may carry its source's newline.
    collapsed = (
        'process 1:"kith serve";main (kith/cli.py:10);feed (kith/feed/router.py:20);execute (sa/orm.py:5) 6\n'
        'process 1:"kith serve";main (kith/cli.py:10);feed (kith/feed/router.py:21) 2\n'
        'process 1:"kith serve";main (kith/cli.py:10);<lambda> (<string>:1\n    return x);'
        "compile (sa/c.py:3) 2\n"
    )
    stacks = profiling.parse(collapsed)
    assert [count for _, count in stacks] == [6, 2, 2]
    summary = profiling.summarise(collapsed)
    own, inclusive = summary.split("## With what it calls")
    assert "| 60.0% | 6 | `execute (sa/orm.py)` |" in own
    # Two lines of one function count as one function.
    assert "| 80.0% | 8 | `feed (kith/feed/router.py)` |" in inclusive
    assert "| 100.0% | 10 | `main (kith/cli.py)` |" in inclusive
