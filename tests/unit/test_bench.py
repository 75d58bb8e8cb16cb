"""The benchmark suite's own pieces, in a few milliseconds (no server, no load)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bench import ceiling, report, wrk
from bench.prepare import LoadData
from bench.run import BY_KEY, CONFIGS, PROFILES

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
        response = await client.get("/api/v1/feed")
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
    assert set(report.LABELS) - {"ceiling"} == set(BY_KEY)
