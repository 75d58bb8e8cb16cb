"""`GET /metrics`: protected by a token, labelled by route template, gauges and counters."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import websockets
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from kith.core.config import Settings
from kith.db.engine import pool_capacity
from kith.main import create_app
from tests.helpers import API, assert_problem, register
from tests.live import serve
from tests.posting import member

TOKEN = "metrics-token-for-tests-0123456789"
SCRAPE = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def metered(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings.model_copy(update={"metrics_token": SecretStr(TOKEN)}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(metered: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=metered)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics", headers=SCRAPE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["cache-control"] == "no-store"
    return response.text


async def test_metrics_are_404_without_a_configured_token(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/metrics"), 404, "not_found")
    assert_problem(await client.get("/metrics", headers=SCRAPE), 404, "not_found")


async def test_metrics_need_the_exact_token(http: httpx.AsyncClient) -> None:
    assert_problem(await http.get("/metrics"), 404, "not_found")
    assert_problem(await http.get("/metrics", headers={"Authorization": "Bearer wrong"}), 404, "not_found")
    assert_problem(await http.get("/metrics", headers={"Authorization": TOKEN}), 404, "not_found")
    await scrape(http)
    # Not part of the public API description.
    assert "/metrics" not in (await http.get("/openapi.json")).json()["paths"]


async def test_requests_are_labelled_by_route_template(metered: FastAPI, http: httpx.AsyncClient) -> None:
    alice = await member(metered.state.resources, "alice")
    bob = await member(metered.state.resources, "bob")
    route = f"{API}/users/{{user_id}}"
    before = await scrape(http)
    for _ in range(3):
        assert (await http.get(f"{API}/users/{bob.id}", headers=alice.headers)).status_code == 200
    assert (await http.get(f"{API}/users/nobody-at-all", headers=alice.headers)).status_code == 404
    after = await scrape(http)

    ok = {"method": "GET", "route": route, "status": "200"}
    assert (
        value(after, "kith_http_requests_total", **ok) - value(before, "kith_http_requests_total", **ok) == 3
    )
    missing = {"method": "GET", "route": route, "status": "404"}
    assert (
        value(after, "kith_http_requests_total", **missing)
        - value(before, "kith_http_requests_total", **missing)
        == 1
    )
    count = "kith_http_request_duration_seconds_count"
    assert value(after, count, **ok) - value(before, count, **ok) == 3
    # Never the raw path, nor a made-up method.
    assert (await http.request("BREW", f"{API}/users/{bob.id}", headers=alice.headers)).status_code == 405
    after = await scrape(http)
    assert "BREW" not in after
    assert bob.id not in after
    assert "nobody-at-all" not in after


async def test_pool_gauges_and_known_counters_are_exported(
    metered: FastAPI, http: httpx.AsyncClient, backend: str
) -> None:
    text = await scrape(http)
    if backend == "postgres":
        assert value(text, "kith_db_pool_size") == pool_capacity(metered.state.settings)
    assert ("kith_db_pool_checked_out", frozenset()) in samples(text)
    # Counted by the rate limiter; declared here so dashboards can rely on the name.
    assert "# TYPE kith_rate_limit_rejections_total counter" in text


async def test_jobs_dispatched_are_counted(http: httpx.AsyncClient) -> None:
    job = "kith.auth.jobs.send_verification_email"
    before = value(await scrape(http), "kith_jobs_dispatched_total", job=job)
    assert (await register(http, "carol")).status_code == 201
    after = value(await scrape(http), "kith_jobs_dispatched_total", job=job)
    assert after - before == 1


async def test_websocket_connections_gauge(metered: FastAPI, http: httpx.AsyncClient) -> None:
    alice = await member(metered.state.resources, "alice")
    assert value(await scrape(http), "kith_websocket_connections") == 0
    async with serve(metered) as base:
        url = base.replace("http://", "ws://") + f"{API}/stream"
        async with websockets.connect(url, additional_headers=alice.headers):
            for _ in range(100):
                if value(await scrape(http), "kith_websocket_connections") == 1:
                    break
                await asyncio.sleep(0.02)
            assert value(await scrape(http), "kith_websocket_connections") == 1
        for _ in range(100):
            if value(await scrape(http), "kith_websocket_connections") == 0:
                break
            await asyncio.sleep(0.02)
        assert value(await scrape(http), "kith_websocket_connections") == 0


WORKER = textwrap.dedent(
    """
    import asyncio, pathlib, sys
    import httpx
    from kith.core.config import Settings
    from kith.main import create_app

    async def main() -> None:
        settings = Settings(
            env="test", var_dir=sys.argv[1], metrics_token=sys.argv[2], trusted_hosts=["*"], _env_file=None
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for _ in range(int(sys.argv[3])):
                    assert (await client.get("/healthz")).status_code == 200
                scraped = await client.get("/metrics", headers={"Authorization": f"Bearer {sys.argv[2]}"})
                pathlib.Path(sys.argv[4]).write_text(scraped.text)

    asyncio.run(main())
    """
)


def test_multiprocess_mode_sums_every_process(tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}

    def run(requests: int) -> str:
        output = tmp_path / "scraped.txt"
        done = subprocess.run(
            [sys.executable, "-c", WORKER, str(tmp_path / "var"), TOKEN, str(requests), str(output)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return output.read_text()

    run(3)
    second = run(2)
    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    # The second process's scrape includes the first process's requests.
    assert value(second, "kith_http_requests_total", **healthz) == 5
    assert list(shared.glob("counter_*.db"))
