"""Cross-cutting behaviour: problem details, request ids, logs, health, OpenAPI."""

from __future__ import annotations

import asyncio
import gc
import json

import httpx
import pytest
import websockets
from fastapi import FastAPI

from kith.core.config import Settings
from kith.db.engine import create_engine
from kith.main import create_app
from tests.helpers import API, MEDIA, assert_mastodon_error, assert_problem, signup
from tests.live import serve


async def test_unknown_route_is_a_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get(f"{API}/nowhere"), 404, "not_found")
    assert body["title"] == "Not Found"


@pytest.mark.parametrize(
    ("method", "path"),
    # (`/api/v1/media/<key>`, where Kith's files were, is now Mastodon's `GET /api/v1/media/:id`:
    # 401 without credentials, 404 with them, tests/security/test_api9_inventory.py.)
    [("GET", "/api/v1/feed"), ("POST", "/api/v1/auth/login")],
)
async def test_the_paths_before_the_move_are_unknown_not_redirected(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """Kith's API moved from `/api/v1` (docs/api.md#conventions): the old paths are 404 like any
    unknown path, with no redirect, since `/api/v1` is the Mastodon-compatible API's."""
    response = await client.request(method, path, json={"username": "ada", "password": "x" * 12})
    # In the Mastodon-compatible API's shape, as every answer under `/api/v1` is.
    assert_mastodon_error(response, 404, "not_found")
    assert "location" not in response.headers


async def test_wrong_method_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{API}/auth/login", json={})
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_malformed_json_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/auth/login", content=b'{"username": ', headers={"Content-Type": "application/json"}
    )
    body = assert_problem(response, 422, "malformed_json")
    assert body["errors"][0]["field"] == "body"


async def test_validation_error_lists_fields(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/auth/register", json={"username": "x", "password": 5})
    body = assert_problem(response, 422, "validation_error")
    fields = {error["field"] for error in body["errors"]}
    assert {"body.username", "body.email", "body.password"} <= fields
    for error in body["errors"]:
        assert set(error) == {"field", "message", "type"}


async def test_unexpected_exception_is_a_500_without_internals(
    app: FastAPI, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    async def explode() -> None:
        raise RuntimeError("secret internals: SELECT password_hash FROM users")

    app.router.add_api_route("/explode", explode)
    response = await client.get("/explode")
    body = assert_problem(response, 500, "internal_error")
    assert "secret" not in response.text
    assert "SELECT" not in response.text
    assert "Traceback" not in response.text
    # The server's log has the traceback, tied to the same request id.
    logged = capsys.readouterr().out
    assert "RuntimeError" in logged
    assert body["request_id"] in logged


async def test_request_id_is_echoed_when_sane_and_replaced_when_not(client: httpx.AsyncClient) -> None:
    sane = await client.get("/healthz", headers={"X-Request-ID": "abc-123_XYZ.7"})
    assert sane.headers["x-request-id"] == "abc-123_XYZ.7"
    hostile = await client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces" + "x" * 200})
    assert hostile.headers["x-request-id"] != "bad id"
    assert len(hostile.headers["x-request-id"]) == 32
    fresh = await client.get("/healthz")
    assert len(fresh.headers["x-request-id"]) == 32


async def test_one_json_log_line_per_request(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    application = create_app(settings.model_copy(update={"log_json": True}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            capsys.readouterr()
            account = await signup(client, "logged")
            capsys.readouterr()
            response = await client.get(
                f"{API}/users/{account.id}", headers={**account.headers, "X-Request-ID": "req-42"}
            )
            assert response.status_code == 200
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert len(requests) == 1
    entry = requests[0]
    assert entry["request_id"] == "req-42"
    assert entry["method"] == "GET"
    assert entry["route"] == f"{API}/users/{{user_id}}"
    assert entry["status"] == 200
    assert entry["user_id"] == account.id
    assert isinstance(entry["duration_ms"], float)
    assert account.access_token not in json.dumps(lines)


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "redis": "not_configured"}}


async def test_readyz_reports_unreachable_redis_as_degraded(settings: Settings) -> None:
    # Nothing listens on port 1: the configured Redis does not answer.
    application = create_app(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "degraded", "checks": {"database": "ok", "redis": "failed"}}


async def test_readyz_is_503_when_the_database_is_down(app: FastAPI, client: httpx.AsyncClient) -> None:
    # An engine pointed at a port where nothing listens stands in for a database that went away.
    broken = app.state.resources.settings.model_copy(
        update={"database_url": "postgresql+asyncpg://postgres@127.0.0.1:1/nothing"}
    )
    healthy = app.state.resources.engine
    app.state.resources.engine = create_engine(broken)
    try:
        response = await client.get("/readyz")
    finally:
        await app.state.resources.engine.dispose()
        app.state.resources.engine = healthy
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "failed"


async def test_openapi_documents_every_route_with_problems(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "Problem" in schema["components"]["schemas"]
    schemes = schema["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == f"{API}/auth/token"
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            assert operation.get("description"), f"{method} {path} has no description"
            responses = operation["responses"]
            assert "500" in responses
            for code, response in responses.items():
                if code.startswith(("4", "5")) and path.startswith(("/api", MEDIA)):
                    assert "application/problem+json" in response["content"], (method, path, code)
            if path.startswith(API) and method != "get" and "requestBody" in operation:
                assert "422" in responses, (method, path)


async def test_the_docs_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "/openapi.json" in response.text


async def test_problem_type_pages_exist(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get(f"{API}/nowhere"), 404)
    page = await client.get(body["type"].replace("https://kith.example", ""))
    assert page.status_code == 200
    assert page.text.startswith('<!doctype html>\n<html lang="en">')
    assert "<h1>not_found</h1>" in page.text
    assert page.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{API}/users/me"),
        ("GET", f"{API}/admin/users"),
        ("POST", f"{API}/auth/refresh"),
        ("POST", f"{API}/auth/login"),
    ],
)
async def test_private_paths_are_no_store_even_on_errors(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, json={})
    assert response.status_code >= 400
    assert response.headers["cache-control"] == "no-store"


async def test_authenticated_json_is_private_no_cache(client: httpx.AsyncClient) -> None:
    account = await signup(client, "cacher")
    response = await client.get(f"{API}/users/{account.id}", headers=account.headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-cache"
    assert "cache-control" not in (await client.get("/healthz")).headers


async def test_startup_objects_are_frozen_while_the_app_runs(settings: Settings) -> None:
    # A full garbage collection walks every object startup built unless they are frozen
    # (115 ms a collection on the benchmark machine, the loop serving nobody meanwhile).
    application = create_app(settings)
    assert gc.get_freeze_count() == 0
    async with application.router.lifespan_context(application):
        assert gc.get_freeze_count() > 50_000
    # Unfrozen at shutdown: an app made and dropped in one process is collected as before.
    assert gc.get_freeze_count() == 0


async def test_websockets_are_logged_by_how_they_ended_and_a_drop_is_no_error(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    application = create_app(settings.model_copy(update={"log_json": True}))
    async with application.router.lifespan_context(application):
        resources = application.state.resources
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            account = await signup(client, "streamer")
        async with serve(application) as base:
            url = base.replace("http://", "ws://") + f"{API}/stream"
            capsys.readouterr()
            # Dropped before authenticating: the server's close finds nobody there.
            async with websockets.connect(url):
                pass
            # Authenticated, then closed by the client.
            async with websockets.connect(url, additional_headers=account.headers) as socket:
                assert json.loads(await socket.recv())["event"] == "unread_count"
            await asyncio.sleep(0.5)
        await resources.jobs.wait_idle()
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert "Traceback" not in out
    assert not [line for line in lines if line.get("level") in ("error", "critical")]
    streams = [
        line for line in lines if line.get("event") == "request" and line.get("route") == f"{API}/stream"
    ]
    assert sorted(line["status"] for line in streams) == [101, 101]
    assert all(line["close_code"] is not None for line in streams)
