"""OWASP API8:2023 Security Misconfiguration.

Per status code, headers are checked in tests/integration/test_http_edge.py; here every
route of the inventory is: security headers and the cache policy on each, hostile input
sent to each without a single 500 or internal detail in an answer, CORS closed unless
configured, and a real `kith serve` that names no software. Production refuses to
start without a proper secret key (tests/unit/test_config.py).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import FastAPI

from kith.runtime.resources import Resources
from tests.fuzz import harness
from tests.helpers import API
from tests.posting import member
from tests.security.inventory import served_routes

HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}
# Things that must never reach a client: tracebacks, SQL, driver and file names.
INTERNALS = re.compile(
    r"Traceback|File \"|sqlalchemy|asyncpg|aiosqlite|sqlite3|psycopg|SELECT |INSERT |UPDATE |"
    r"/work/|site-packages|\.py\b|Exception|Error:|"
    r"\bkith\.(core|db|auth|users|posts|social|media|feed|notifications|moderation|admin|main)\b",
)
HOSTILE_IDS = ["' OR '1'='1", "../../etc/passwd", "%00", "9" * 400, "\u202e\u0000x", "{{7*7}}"]
HOSTILE_BODIES: list[Any] = [
    [],
    "x",
    1e308,
    {"x": {"y": [None] * 50}},
    {"content": {"$ne": ""}},
    {"content": "\x00", "user_id": "\x00", "ids": ["\x00"], "target_id": "\x00", "username": "\x00"},
]


def _urls(path: str) -> list[str]:
    if "{" not in path:
        return [path]
    return [re.sub(r"\{[^}]+\}", quote(value, safe=""), path) for value in HOSTILE_IDS]


async def test_every_route_sends_the_security_headers_and_a_cache_policy(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    for number, route in enumerate(served_routes(app)):
        if route.method == "WS":
            continue
        # A fresh caller per route: one of them is logout.
        ada = await member(resources, f"ada{number}")
        path = route.path.replace("{key}", "0" * 32 + ".png").replace("{code}", "not_found")
        url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        response = await client.request(route.method, url, headers=ada.headers, json={})
        for name, value in HEADERS.items():
            if name == "referrer-policy" and (route.method, route.path) == ("GET", "/oauth/authorize"):
                # The authorization page's own: browsers then send its form's `Origin`.
                value = "same-origin"
            assert response.headers.get(name) == value, (route.method, route.path, name)
        assert "content-security-policy" in response.headers, route.path
        no_store = (f"{API}/auth", f"{API}/users/me", f"{API}/admin", "/oauth/", "/api/v1/apps")
        if route.path.startswith(no_store):
            assert response.headers["cache-control"] == "no-store", route.path
        elif route.path.startswith(API):
            assert response.headers["cache-control"] in ("private, no-cache", "no-store"), route.path


def _error_type(method: str, path: str) -> str:
    """How an error is written at `path`: Mastodon's JSON on its paths (docs/mastodon.md), a
    page for the user of the authorization page, a problem document elsewhere."""
    if (method, path) == ("GET", "/oauth/authorize"):
        return "text/html; charset=utf-8"
    if path.startswith(("/api/v1/", "/api/v2/", "/oauth/")):
        return "application/json"
    return "application/problem+json"


async def test_hostile_input_never_meets_a_500_or_shows_internals(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    sent = 0
    for number, route in enumerate(served_routes(app)):
        if route.method == "WS" or route.path in ("/docs", "/openapi.json"):
            continue
        # A fresh caller per route: one of them is logout.
        ada = await member(resources, f"ada{number}")
        bodies = HOSTILE_BODIES if route.method in ("POST", "PATCH", "DELETE") else [None]
        for url in _urls(route.path):
            for body in bodies:
                response = await client.request(route.method, url, json=body, headers=ada.headers)
                sent += 1
                assert response.status_code < 500, (route.method, url, body, response.text)
                # Judged on its input, not refused for its caller (an app's sign-in names
                # its client in the body; verifying an app needs an app's token, not a login).
                open_to_401 = (f"{API}/auth/", "/oauth/", "/api/v1/apps/verify_credentials")
                assert response.status_code != 401 or route.path.startswith(open_to_401), url
                if response.status_code >= 400 and route.path != "/problems/{code}":
                    assert response.headers["content-type"] == _error_type(route.method, route.path), url
                    assert not INTERNALS.search(response.text), (url, response.text)
    assert sent > 300


async def test_cors_is_closed_unless_origins_are_configured(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        f"{API}/auth/login",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    response = await client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-credentials" not in response.headers


def test_a_real_server_names_no_software(tmp_path: Path) -> None:
    with harness.prepared_server(tmp_path) as (base_url, _accounts):
        for path in ("/healthz", f"{API}/users/me", f"{API}/nowhere", "/docs"):
            response = httpx.get(base_url + path)
            assert "server" not in response.headers, path
            assert "x-powered-by" not in response.headers, path
            for value in response.headers.values():
                assert not re.search(r"uvicorn|python|fastapi|starlette", value, re.IGNORECASE), (path, value)
