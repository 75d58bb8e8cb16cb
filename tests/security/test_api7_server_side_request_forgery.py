"""OWASP API7:2023 Server Side Request Forgery.

Kith never fetches a URL a client gives it: avatars and post images are uploads named by
id, not links; e-mail links and `Location` headers are built from the configured public
URL, never from the request; media files are read from storage by a validated key only
(path tricks: tests/integration/test_media.py). The only connections the server opens
are to its configured database, Redis and SMTP server.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import FastAPI

from kith.runtime.resources import Resources
from tests.conftest import Mailbox
from tests.helpers import API, field_errors
from tests.posting import member

URL_LIKE = re.compile(r"url|uri|link|callback|webhook|href|src|host|endpoint", re.IGNORECASE)


def _properties(schema: Any, schemas: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict) and "$ref" in schema:
        return _properties(schemas[schema["$ref"].rsplit("/", 1)[1]], schemas)
    found = []
    if isinstance(schema, dict):
        for name, value in schema.get("properties", {}).items():
            found.append((name, value))
            found.extend(_properties(value, schemas))
        for key in ("items", "anyOf", "oneOf", "allOf"):
            items = schema.get(key)
            for item in items if isinstance(items, list) else [items] if items else []:
                found.extend(_properties(item, schemas))
    return found


def test_no_request_takes_a_url(app: FastAPI) -> None:
    document = app.openapi()
    schemas = document["components"]["schemas"]
    inputs = []
    for item in document["paths"].values():
        for operation in item.values():
            inputs += [
                (parameter["name"], parameter["schema"]) for parameter in operation.get("parameters", [])
            ]
            for body in operation.get("requestBody", {}).get("content", {}).values():
                inputs += _properties(body["schema"], schemas)
    assert len(inputs) > 50
    for name, schema in inputs:
        assert not URL_LIKE.search(name), name
        assert schema.get("format") not in ("uri", "url", "uri-reference", "iri"), name


async def test_an_avatar_is_an_upload_never_a_link(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    for field in ("avatar_url", "avatar", "image_url"):
        response = await client.patch(
            f"{API}/users/me", json={field: "http://169.254.169.254/latest/meta-data/"}, headers=ada.headers
        )
        assert field_errors(response) == {f"body.{field}"}
    assert (await client.get(f"{API}/users/me", headers=ada.headers)).json()["avatar_url"] is None


async def test_links_the_server_writes_ignore_the_request(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    hostile = {
        "Host": "internal.evil.example",
        "X-Forwarded-Host": "evil.example",
        "Forwarded": "host=evil.example",
    }
    created = await client.post(
        f"{API}/auth/register",
        json={"username": "ada", "email": "ada@example.com", "password": "a fine long passphrase"},
        headers=hostile,
    )
    assert created.headers["location"].startswith(f"https://kith.example{API}/users/")
    await client.post(f"{API}/auth/password-reset", json={"email": "ada@example.com"}, headers=hostile)
    await resources.jobs.wait_idle()
    texts = [Mailbox.text_of(message) for message in mailbox.to("ada@example.com")]
    links = [link for text in texts for link in re.findall(r"https?://\S+", text)]
    assert len(links) >= 2
    assert all(link.startswith("https://kith.example/") for link in links), links
    assert not any("evil" in text for text in texts)
    problem = await client.get(f"{API}/nowhere", headers=hostile)
    assert problem.json()["type"].startswith("https://kith.example/problems/")
