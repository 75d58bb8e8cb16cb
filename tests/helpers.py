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
