"""OWASP API4:2023 Unrestricted Resource Consumption.

Every size, count and page limit of the API, at N (accepted) and N+1 (refused), from one
table; bombs that are small on the wire and huge once expanded (an image, a gzip body,
deeply nested JSON); and a flood of logins, which the rate limit stops before any
password hash is computed. Each rate limit at its count and one over is in
tests/integration/test_rate_limits.py; the streamed body and upload caps in
tests/integration/test_http_edge.py and test_media.py.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import io
import struct
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from kith.core.config import Settings
from kith.main import create_app
from kith.runtime.resources import Resources
from tests.helpers import API, PASSWORD, Account, assert_problem, record_pixel_decoding
from tests.integration.test_rate_limits import count_password_checks, limited_app
from tests.posting import create_post, member, upload

Send = Callable[[httpx.AsyncClient, Resources, Account, int], Awaitable[httpx.Response]]


def _text(n: int) -> str:
    return "é" * n  # counted in characters, not bytes


def _body(method: str, path: str, build: Callable[[int], dict[str, Any]]) -> Send:
    async def send(
        client: httpx.AsyncClient, resources: Resources, account: Account, n: int
    ) -> httpx.Response:
        return await client.request(method, f"{API}{path}", json=build(n), headers=account.headers)

    return send


def _query(path: str, name: str, value: Callable[[int], str] = str) -> Send:
    async def send(
        client: httpx.AsyncClient, resources: Resources, account: Account, n: int
    ) -> httpx.Response:
        return await client.get(f"{API}{path}", params={name: value(n)}, headers=account.headers)

    return send


async def _post_with_media(
    client: httpx.AsyncClient, resources: Resources, account: Account, n: int
) -> httpx.Response:
    ids = [await upload(resources, account) for _ in range(n)]
    return await client.post(f"{API}/posts", json={"media_ids": ids}, headers=account.headers)


async def _comment(
    client: httpx.AsyncClient, resources: Resources, account: Account, n: int
) -> httpx.Response:
    post = await create_post(client, account, content="hi")
    return await client.post(
        f"{API}/posts/{post['id']}/comments", json={"content": _text(n)}, headers=account.headers
    )


async def _idempotency_key(
    client: httpx.AsyncClient, resources: Resources, account: Account, n: int
) -> httpx.Response:
    headers = {**account.headers, "Idempotency-Key": "k" * n}
    return await client.post(f"{API}/posts", json={"content": "x"}, headers=headers)


# name -> (N, how to send a request at a given size, success status)
LIMITS: dict[str, tuple[int, Send, int]] = {
    "post content": (5000, _body("POST", "/posts", lambda n: {"content": _text(n)}), 201),
    "comment": (2000, _comment, 201),
    "display name": (50, _body("PATCH", "/users/me", lambda n: {"display_name": _text(n)}), 200),
    "bio": (500, _body("PATCH", "/users/me", lambda n: {"bio": _text(n)}), 200),
    "API key name": (100, _body("POST", "/users/me/api-keys", lambda n: {"name": _text(n)}), 201),
    "report reason": (
        1000,
        _body("POST", "/reports", lambda n: {"target_type": "user", "target_id": "x", "reason": _text(n)}),
        404,  # a valid report of a user who does not exist
    ),
    "media per post": (4, _post_with_media, 201),
    "ids marked read": (100, _body("POST", "/notifications/read", lambda n: {"ids": ["x"] * n}), 204),
    "page size (cursor)": (100, _query("/feed", "limit"), 200),
    "page size (directory)": (100, _query("/users", "page_size"), 200),
    "page number": (100_000, _query("/users", "page"), 200),
    "search term": (50, _query("/users", "q", lambda n: "a" * n), 200),
    "cursor length": (
        200,
        _query("/feed", "cursor", lambda n: "A" * n),
        422,
    ),  # not a cursor, but not too long
    "Idempotency-Key": (255, _idempotency_key, 201),
}


@pytest.mark.parametrize("name", list(LIMITS))
async def test_each_limit_at_n_and_n_plus_one(
    client: httpx.AsyncClient, resources: Resources, name: str
) -> None:
    limit, send, ok = LIMITS[name]
    account = await member(resources, "ada")
    at_limit = await send(client, resources, account, limit)
    assert at_limit.status_code == ok, (name, at_limit.text)
    over = await send(client, resources, account, limit + 1)
    body = assert_problem(over, 422, "validation_error")
    assert body["errors"], name


async def test_username_and_password_lengths(client: httpx.AsyncClient) -> None:
    def register(username: str, password: str) -> Awaitable[httpx.Response]:
        body = {"username": username, "email": f"{username.lower()}@example.com", "password": password}
        return client.post(f"{API}/auth/register", json=body)

    assert (await register("u" * 30, "p" * 127 + "q")).status_code == 201
    assert_problem(await register("v" * 31, PASSWORD), 422, "validation_error")
    assert_problem(await register("w" * 29, "p" * 128 + "q"), 422, "validation_error")


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def _png_bomb(width: int, height: int) -> bytes:
    """A complete, valid greyscale PNG of zeros, compressed row by row: tiny on the wire,
    `width * height` bytes once decoded."""
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte, then the pixels
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


# Pillow warns when it reads the bomb's header; the server refuses it right after.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
async def test_pixels_at_n_and_n_plus_one_and_an_image_bomb(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings.model_copy(update={"media_max_pixels": 100}))
    async with app.router.lifespan_context(app):
        account = await member(app.state.resources, "ada")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http:

            async def send(image: bytes) -> httpx.Response:
                files = {"file": ("a.png", image, "image/png")}
                return await http.post(f"{API}/media", files=files, headers=account.headers)

            assert (await send(_png(10, 10))).status_code == 201
            assert_problem(await send(_png(101, 1)), 422, "image_too_large")
            # 12,000 x 12,000 grey pixels: 144 MB decoded, under 200 KB on the wire.
            bomb = _png_bomb(12_000, 12_000)
            assert len(bomb) < 200_000
            decoded = record_pixel_decoding(monkeypatch)
            assert_problem(await send(bomb), 422, "image_too_large")
            assert decoded == []  # refused from the header: not one pixel decoded


async def test_compressed_and_nested_bodies_are_not_expanded(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    # 20 MB of JSON in 20 KB of gzip: request bodies are never inflated, so it is not JSON.
    bomb = gzip.compress(b'{"content": "' + b"a" * 20_000_000 + b'"}')
    headers = {**ada.headers, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    assert_problem(await client.post(f"{API}/posts", content=bomb, headers=headers), 422, "malformed_json")
    nested = b"[" * 500_000 + b"]" * 500_000  # just under the 1 MiB cap
    headers = {**ada.headers, "Content-Type": "application/json"}
    assert_problem(await client.post(f"{API}/posts", content=nested, headers=headers), 422, "malformed_json")
    over = b"[" * 600_000 + b"]" * 600_000
    assert_problem(await client.post(f"{API}/posts", content=over, headers=headers), 413, "payload_too_large")


async def test_a_flood_of_logins_is_stopped_before_any_hashing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with limited_app(settings, monkeypatch) as (client, resources):
        await member(resources, "ada")
        hashes = count_password_checks(resources, monkeypatch)
        wrong = {"username": "ada", "password": "not the password"}
        answers = await asyncio.gather(*(client.post(f"{API}/auth/login", json=wrong) for _ in range(40)))
        statuses = sorted(response.status_code for response in answers)
        # The limits of docs/api.md: 10 logins a minute from one address, and 5 failures per
        # account and address in 15 minutes; every refusal comes before the hash.
        assert statuses.count(429) >= 30
        assert set(statuses) <= {401, 429}
        assert len(hashes) == statuses.count(401) <= 10
        for response in answers:
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
