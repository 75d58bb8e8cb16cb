"""Small helpers that drive the API the way a client would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import ImageFile

from kith.auth import service as auth
from kith.db.models import Role
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work

PASSWORD = "correct horse battery"
# Written out here, not imported from `kith.core.urls`: a test notices when the paths move.
API = "/api/kith/v1"
MEDIA = "/media"


@dataclass
class Account:
    id: str
    username: str
    email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def register(client: httpx.AsyncClient, username: str, **fields: Any) -> httpx.Response:
    body = {"username": username, "email": f"{username.lower()}@example.com", "password": PASSWORD, **fields}
    return await client.post(f"{API}/auth/register", json=body)


async def login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post(f"{API}/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def signup(client: httpx.AsyncClient, username: str, **fields: Any) -> Account:
    """Register and log in; returns the account with its tokens."""
    response = await register(client, username, **fields)
    assert response.status_code == 201, response.text
    user = response.json()
    tokens = await login(client, username, fields.get("password", PASSWORD))
    return Account(user["id"], username, user["email"], tokens["access_token"], tokens["refresh_token"])


async def staff(client: httpx.AsyncClient, resources: Resources, username: str, role: Role) -> Account:
    """An account with `role`, made the way `kith create-admin` makes one."""
    async with unit_of_work(resources) as session:
        user = await auth.create_user(
            session,
            resources.passwords,
            username=username,
            email=f"{username}@example.com",
            password=PASSWORD,
            role=role,
            email_verified=True,
        )
    tokens = await login(client, username)
    return Account(user.id, username, user.email, tokens["access_token"], tokens["refresh_token"])


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Check an RFC 9457 problem response and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["type"].endswith(f"/problems/{body['code']}")
    if code is not None:
        assert body["code"] == code, body
    return body


def assert_mastodon_error(response: httpx.Response, status: int, error: str | None = None) -> dict[str, Any]:
    """Check an error of the Mastodon-compatible paths (docs/mastodon.md#conventions) and return
    its body: `{"error", "error_description"}` as JSON. `error` is the expected `error` (on
    `/oauth`, an OAuth 2 code) or, on `/api/v1` and `/api/v2`, Kith's code in `error_description`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert "status" not in body and "type" not in body
    if error is not None:
        assert error in (body["error"], body["error_description"]), body
    return body


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """An error in the shape of its path: Mastodon's on the Mastodon-compatible paths, else a
    problem document (docs/mastodon.md#conventions)."""
    path = response.request.url.path
    if path.startswith(("/api/v1/", "/api/v2/", "/oauth/")):
        assert_mastodon_error(response, status, code)
    else:
        assert_problem(response, status, code)


def field_errors(response: httpx.Response) -> set[str]:
    return {error["field"] for error in response.json().get("errors", [])}


def record_pixel_decoding(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """A list that receives every image Pillow decodes pixels of (`ImageFile.load`) from now on."""
    decoded: list[object] = []
    load = ImageFile.ImageFile.load

    def recording_load(image: ImageFile.ImageFile) -> object:
        decoded.append(image)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    return decoded
