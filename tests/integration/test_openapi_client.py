"""The OpenAPI document generates a usable client (docs/api.md#operations).

Every operation has a hand-chosen, unique camelCase operationId and a tag, so a generated
client has one readable function per operation (`create_post`, not
`create_post_api_v1_posts_post`). The last test proves it with a maintained generator.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from kith.runtime.resources import Resources
from tests.conftest import Mailbox

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "kith_generated_client"
CAMEL_CASE = re.compile(r"[a-z]+(?:[A-Z][a-z0-9]*)*")
# The shape of FastAPI's default ids: the function name, the path and the method.
FASTAPI_DEFAULT = re.compile(r"_api_v1_|_(get|post|put|patch|delete|head|options)$")
# The generator knows file responses as bytes only under a generic content type; the
# spec names the real ones (image/jpeg..., application/zip for an export's archive), so the
# mapping is the generator's setting.
GENERATOR_CONFIG = {
    "post_hooks": [],
    "content_type_overrides": dict.fromkeys(
        ("image/jpeg", "image/png", "image/gif", "image/webp", "application/zip"), "application/octet-stream"
    ),
}


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


async def test_every_operation_has_a_chosen_unique_operation_id_and_a_tag(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    spec = (await client.get("/openapi.json")).json()
    operations = list(_operations(spec))
    assert len(operations) > 50
    ids = [operation["operationId"] for _, _, operation in operations]
    assert len(set(ids)) == len(ids), sorted(i for i in ids if ids.count(i) > 1)
    known_tags = {tag["name"] for tag in spec["tags"]}
    for method, path, operation in operations:
        operation_id = operation["operationId"]
        assert CAMEL_CASE.fullmatch(operation_id), (method, path, operation_id)
        assert not FASTAPI_DEFAULT.search(operation_id), (method, path, operation_id)
        assert len(operation["tags"]) == 1 and operation["tags"][0] in known_tags, (method, path)
    # Chosen in code for every route, those left out of the document included.
    for route in app.routes:
        if isinstance(route, APIRoute):
            assert route.operation_id and CAMEL_CASE.fullmatch(route.operation_id), route.path
    assert {"getMe", "listFeed", "createPost", "register", "logIn"} <= set(ids)


def _generate(spec: dict[str, Any], directory: Path) -> ModuleType:
    """Generate a client package from `spec` into `directory` and import it."""
    spec_file = directory / "openapi.json"
    spec_file.write_text(json.dumps(spec))
    config_file = directory / "generator.json"
    config_file.write_text(json.dumps(GENERATOR_CONFIG))
    generated = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(spec_file),
            "--output-path",
            str(directory / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    # Any part of the spec the generator could not turn into code is a warning.
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout + generated.stderr
    sys.path.insert(0, str(directory))
    importlib.invalidate_caches()
    return importlib.import_module(PACKAGE)


@pytest.fixture
def generated_client_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    # Each run imports its own package under the same name.
    for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]
    sys.path.remove(str(tmp_path))


async def test_a_generated_client_registers_logs_in_posts_and_reads_the_feed(
    app: FastAPI,
    client: httpx.AsyncClient,
    resources: Resources,
    mailbox: Mailbox,
    generated_client_dir: Path,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    kith_client = _generate(spec, generated_client_dir)
    models = importlib.import_module(f"{PACKAGE}.models")

    def operation(tag: str, operation_id: str) -> Any:
        """The generated module of one operation: `api/<tag>/<operation_id in snake_case>.py`."""
        return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation_id}")

    # The generated clients make their own httpx client, here on a transport into the app.
    to_app = {"transport": httpx.ASGITransport(app=app)}
    anonymous = kith_client.Client(base_url="http://testserver", httpx_args=to_app)
    async with anonymous:
        registered = await operation("auth", "register").asyncio_detailed(
            client=anonymous,
            body=models.RegisterRequest(
                username="genny", email="genny@example.com", password="a long passphrase"
            ),
        )
        assert registered.status_code == 201, registered.content
        assert isinstance(registered.parsed, models.PrivateUser)
        assert registered.parsed.username == "genny"
        assert registered.parsed.email_verified is False
        await resources.jobs.wait_idle()
        token = mailbox.token("genny@example.com", "Confirm your e-mail address")
        verified = await operation("auth", "verify_email").asyncio_detailed(
            client=anonymous, body=models.TokenRequest(token=token)
        )
        assert verified.status_code == 204
        log_in = operation("auth", "log_in")
        tokens = await log_in.asyncio(
            client=anonymous, body=models.LoginRequest(username="genny", password="a long passphrase")
        )
        assert isinstance(tokens, models.TokenPair), tokens
        assert tokens.token_type == "bearer"
        # Errors come back as the Problem model.
        wrong = await log_in.asyncio(
            client=anonymous,
            body=models.LoginRequest(email="genny@example.com", password="not the passphrase"),
        )
        assert isinstance(wrong, models.Problem), wrong
        assert (wrong.status, wrong.code) == (401, "invalid_credentials")

    user = kith_client.AuthenticatedClient(
        base_url="http://testserver", token=tokens.access_token, httpx_args=to_app
    )
    async with user:
        me = await operation("users", "get_me").asyncio(client=user)
        assert isinstance(me, models.PrivateUser), me
        assert me.email_verified is True
        created = await operation("posts", "create_post").asyncio(
            client=user, body=models.PostCreate(content="Hello from a generated client")
        )
        assert isinstance(created, models.PostView), created
        assert created.author.username == "genny"
        assert created.visibility == models.Visibility.FRIENDS
        page = await operation("feed", "list_feed").asyncio(client=user, limit=10)
        assert isinstance(page, models.CursorPagePostView), page
        assert [item.id for item in page.items] == [created.id]
        assert page.items[0].content == "Hello from a generated client"
        assert page.next_cursor is None
