"""The HTTP edge: security headers, CSP, CORS, trusted hosts, gzip and body size cap."""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from kith.core.config import ConfigurationError, Settings
from kith.main import create_app
from tests.helpers import API, assert_problem, register
from tests.posting import create_post, member

API_CSP = "default-src 'none'; frame-ancestors 'none'"
MIB = 1024 * 1024


def assert_security_headers(response: httpx.Response, csp: str | None = API_CSP) -> None:
    headers = response.headers
    assert headers.get_list("x-content-type-options") == ["nosniff"], response.request.url
    assert headers.get_list("x-frame-options") == ["DENY"]
    assert headers.get_list("referrer-policy") == ["no-referrer"]
    if csp is not None:
        assert headers.get_list("content-security-policy") == [csp], response.request.url


async def client_for(
    settings: Settings, base_url: str = "http://testserver"
) -> tuple[FastAPI, httpx.AsyncClient]:
    application = create_app(settings)
    return application, httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url=base_url)


# --- security headers ---------------------------------------------------------------


async def test_every_status_carries_the_security_headers(app: FastAPI, client: httpx.AsyncClient) -> None:
    async def explode() -> None:
        raise RuntimeError("boom")

    app.router.add_api_route("/explode", explode)
    alice = await member(app.state.resources, "alice")
    responses = {
        200: await client.get("/healthz"),
        201: await register(client, "bob"),
        401: await client.get(f"{API}/users/me"),
        404: await client.get(f"{API}/nowhere"),
        405: await client.put(f"{API}/auth/login", json={}),
        413: await client.post(f"{API}/posts", content=b"x" * (MIB + 1), headers=alice.headers),
        422: await client.post(f"{API}/posts", json={"content": ""}, headers=alice.headers),
        500: await client.get("/explode"),
    }
    for status, response in responses.items():
        assert response.status_code == status, (status, response.text)
        assert_security_headers(response)
        assert "strict-transport-security" not in response.headers  # plain HTTP
    # A user's own JSON carries them too.
    assert_security_headers(await client.get(f"{API}/users/me", headers=alice.headers))


async def test_hsts_only_over_https(app: FastAPI, client: httpx.AsyncClient) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://kith.example") as secure:
        for response in (await secure.get("/healthz"), await secure.get(f"{API}/nowhere")):
            assert response.headers["strict-transport-security"] == "max-age=31536000"
            assert_security_headers(response)
    assert "strict-transport-security" not in (await client.get("/healthz")).headers


async def test_pages_set_their_own_csp_and_everything_else_gets_the_json_one(
    client: httpx.AsyncClient,
) -> None:
    # The web client's page and the API docs choose theirs (tests/integration/test_web_client.py).
    for path in ("/", "/docs"):
        response = await client.get(path)
        assert_security_headers(response, csp=None)
        assert response.headers.get_list("content-security-policy") != [API_CSP]
        assert "script-src 'self'" in response.headers["content-security-policy"]
    for path in ("/openapi.json", "/problems/not_found", "/healthz", f"{API}/nowhere"):
        assert_security_headers(await client.get(path))


def noisy_png(side: int) -> bytes:
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def test_media_files_keep_their_headers_and_are_not_gzipped(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    alice = await member(app.state.resources, "alice")
    # Larger than the JSON body cap: uploads have their own cap and are exempt from it.
    data = noisy_png(700)
    assert len(data) > MIB
    upload = await client.post(
        f"{API}/media", files={"file": ("a.png", data, "image/png")}, headers=alice.headers
    )
    assert upload.status_code == 201, upload.text
    path = upload.json()["url"].removeprefix("https://kith.example")
    response = await client.get(path, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "content-encoding" not in response.headers
    assert_security_headers(response)


# --- CORS ---------------------------------------------------------------------------


async def test_cors_allows_listed_origins_only(settings: Settings) -> None:
    configured = settings.model_copy(update={"cors_origins": ["https://app.example"]})
    application, http = await client_for(configured)
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    async with application.router.lifespan_context(application), http:
        allowed = await http.options(f"{API}/posts", headers={"Origin": "https://app.example", **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "POST" in allowed.headers["access-control-allow-methods"]
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in allowed.headers
        assert_security_headers(allowed)

        refused = await http.options(f"{API}/posts", headers={"Origin": "https://evil.example", **preflight})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers

        simple = await http.get("/healthz", headers={"Origin": "https://app.example"})
        assert simple.headers["access-control-allow-origin"] == "https://app.example"
        exposed = {
            name.strip() for name in simple.headers["access-control-expose-headers"].lower().split(",")
        }
        assert {"x-request-id", "link"} <= exposed
        # Both names of the rate limit: Kith's and Mastodon's (docs/mastodon.md#conventions).
        assert {
            "ratelimit-reset",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        } <= exposed
        other = await http.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_wildcard_origin_with_credentials_refuses_to_start(settings: Settings) -> None:
    wildcard = settings.model_copy(update={"cors_origins": ["*"], "cors_allow_credentials": True})
    with pytest.raises(ConfigurationError, match="KITH_CORS_ORIGINS"):
        create_app(wildcard)
    # Either one alone is fine.
    create_app(settings.model_copy(update={"cors_origins": ["*"]}))
    create_app(
        settings.model_copy(update={"cors_origins": ["https://app.example"], "cors_allow_credentials": True})
    )


# --- trusted hosts ------------------------------------------------------------------


async def test_default_trusted_hosts_are_local_and_the_public_host(settings: Settings) -> None:
    default = settings.model_copy(update={"trusted_hosts": []})
    assert default.allowed_hosts == ["localhost", "127.0.0.1", "::1", "kith.example"]
    application = create_app(default)
    transport = httpx.ASGITransport(app=application)
    async with application.router.lifespan_context(application):
        for base in (
            "https://kith.example",
            "http://localhost:8000",
            "http://127.0.0.1",
            "http://[::1]:8000",
        ):
            async with httpx.AsyncClient(transport=transport, base_url=base) as http:
                assert (await http.get("/healthz")).status_code == 200, base
        async with httpx.AsyncClient(transport=transport, base_url="http://evil.example") as http:
            response = await http.get("/healthz")
            assert_problem(response, 400, "invalid_host")
            assert_security_headers(response)
            # A Host that merely starts with an allowed name is still refused.
            bad = await http.get("/healthz", headers={"Host": "kith.example.evil.example"})
            assert_problem(bad, 400, "invalid_host")


async def test_trusted_hosts_wildcards(settings: Settings) -> None:
    configured = settings.model_copy(update={"trusted_hosts": ["*.kith.example", "api.example"]})
    application = create_app(configured)
    transport = httpx.ASGITransport(app=application)
    async with application.router.lifespan_context(application):
        for base, status in (
            ("https://eu.kith.example", 200),
            ("https://api.example", 200),
            ("https://kith.example", 400),
            ("https://localhost", 400),
        ):
            async with httpx.AsyncClient(transport=transport, base_url=base) as http:
                assert (await http.get("/healthz")).status_code == status, base


async def test_a_target_naming_another_host_is_refused_under_any_http_parser(settings: Settings) -> None:
    """Under a server that passes an absolute-form target as the path (h11 does), the
    middleware reads the host from there; `kith serve`'s own parser is tested in
    test_serve_processes.py."""
    application = create_app(settings.model_copy(update={"trusted_hosts": ["localhost"]}))
    async with application.router.lifespan_context(application):
        for target, status in (
            (b"http://evil.example/healthz", 421),
            (b"http://localhost:8000/healthz", 200),
        ):
            sent: list[dict[str, object]] = []

            async def receive() -> dict[str, object]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict[str, object], sent: list[dict[str, object]] = sent) -> None:
                sent.append(message)

            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": target.decode(),
                "raw_path": target,
                "root_path": "",
                "query_string": b"",
                "headers": [(b"host", b"localhost:8000")],
                "client": ("127.0.0.1", 5000),
                "server": ("127.0.0.1", 8000),
                "state": {},
            }
            await application(scope, receive, send)  # type: ignore[arg-type]
            # A served target that is not a route is 404; only a refused one is 421.
            assert sent[0]["status"] == (status if status == 421 else 404), target


# --- gzip ---------------------------------------------------------------------------


async def test_large_lists_are_gzipped_small_responses_are_not(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    alice = await member(app.state.resources, "alice")
    for number in range(12):
        await create_post(client, alice, content=f"post {number} " + "words " * 30)
    gzip = {"Accept-Encoding": "gzip", **alice.headers}
    large = await client.get(f"{API}/users/{alice.id}/posts", headers=gzip)
    assert large.status_code == 200
    assert large.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in large.headers["vary"].lower()
    assert len(large.json()["items"]) == 12  # httpx decompressed it
    assert int(large.headers["content-length"]) < len(large.content)
    assert_security_headers(large)

    small = await client.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert len(small.content) < 1024
    assert "content-encoding" not in small.headers
    identity = await client.get(
        f"{API}/users/{alice.id}/posts", headers={"Accept-Encoding": "identity", **alice.headers}
    )
    assert "content-encoding" not in identity.headers


# --- body size cap ------------------------------------------------------------------


async def test_oversized_body_is_refused_by_content_length(app: FastAPI, client: httpx.AsyncClient) -> None:
    alice = await member(app.state.resources, "alice")
    body = json.dumps({"content": "x" * MIB}).encode()
    response = await client.post(
        f"{API}/posts", content=body, headers={"Content-Type": "application/json", **alice.headers}
    )
    problem = assert_problem(response, 413, "payload_too_large")
    assert str(MIB) in problem["detail"]
    # Nothing was created.
    listed = await client.get(f"{API}/users/{alice.id}/posts", headers=alice.headers)
    assert listed.json()["items"] == []
    # Just under the cap is read and judged on its content (too long a post: 422).
    under = json.dumps({"content": "x" * (MIB - 100)}).encode()
    assert len(under) <= MIB
    judged = await client.post(
        f"{API}/posts", content=under, headers={"Content-Type": "application/json", **alice.headers}
    )
    assert_problem(judged, 422)


async def test_oversized_chunked_body_is_refused_while_streaming(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    alice = await member(app.state.resources, "alice")
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"content": "'
        for _ in range(64):
            sent += 64 * 1024
            yield b"x" * (64 * 1024)
        yield b'"}'

    request = client.build_request(
        "POST",
        f"{API}/posts",
        content=chunks(),
        headers={"Content-Type": "application/json", **alice.headers},
    )
    assert "content-length" not in request.headers
    response = await client.send(request)
    assert_problem(response, 413, "payload_too_large")
    # Refused once the count passed the cap, long before the 4 MiB were sent.
    assert sent <= MIB + 64 * 1024
    listed = await client.get(f"{API}/users/{alice.id}/posts", headers=alice.headers)
    assert listed.json()["items"] == []


async def test_body_cap_is_configurable(settings: Settings) -> None:
    application, http = await client_for(settings.model_copy(update={"max_body_bytes": 2048}))
    async with application.router.lifespan_context(application), http:
        response = await http.post(f"{API}/auth/login", json={"username": "a" * 3000, "password": "x"})
        assert_problem(response, 413, "payload_too_large")
        small = await http.post(
            f"{API}/auth/login", json={"username": "nobody", "password": "wrong password"}
        )
        assert small.status_code == 401
