"""What fuzzing Kith against its own OpenAPI description found, one regression test each.

Every test here failed before its fix. The fuzzing itself lives in `test_schemathesis.py`;
these pin each finding down so it cannot come back unnoticed on a run that happens not to
generate the same input.
"""

from __future__ import annotations

import httpx
import pytest

from kith.core.resources import Resources
from tests.helpers import API, assert_problem
from tests.posting import member


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/auth/refresh"),
        ("POST", "/auth/password-reset"),
        ("PATCH", "/users/me"),
        ("DELETE", "/users/me"),
        ("POST", "/users/me/password"),
    ],
)
async def test_a_body_that_is_not_utf8_is_malformed_json(
    client: httpx.AsyncClient, resources: Resources, method: str, path: str
) -> None:
    """Was 400 `bad_request` ("There was an error parsing the body"), a status none of them documents."""
    ada = await member(resources, "ada")
    response = await client.request(
        method,
        f"{API}{path}",
        content=b"\xff\xfe{",
        headers={**ada.headers, "Content-Type": "application/json"},
    )
    body = assert_problem(response, 422, "malformed_json")
    assert body["errors"] == [{"field": "body", "message": "invalid JSON", "type": "json_invalid"}]


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/blocks", "GET, POST"),
        ("/users/me", "GET, PATCH, DELETE"),
        ("/posts/0", "GET, PATCH, DELETE"),
        ("/admin/users/0", "PATCH, DELETE"),
        ("/friend-requests/0", "GET, PATCH, DELETE"),
    ],
)
async def test_405_lists_every_method_of_the_path(
    client: httpx.AsyncClient, resources: Resources, path: str, allowed: str
) -> None:
    """`Allow` named only the methods of the first route that matched the path (RFC 9110 §15.5.6)."""
    ada = await member(resources, "ada")
    response = await client.request("PUT", f"{API}{path}", headers=ada.headers)
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allowed


async def test_bearer_tokens_are_described_as_an_http_bearer_scheme(client: httpx.AsyncClient) -> None:
    """Only an OAuth2 password flow described the bearer token, so tools that add or strip
    credentials (schemathesis's `ignored_auth` among them) could not find `Authorization`."""
    schema = (await client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["BearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schema["components"]["securitySchemes"]["BearerToken"]["description"],
    }
    secured = 0
    for path_item in schema["paths"].values():
        for operation in path_item.values():
            security = operation.get("security")
            if security:
                secured += 1
                assert security == [{"OAuth2PasswordBearer": []}, {"BearerToken": []}, {"APIKeyHeader": []}]
    assert secured > 40


async def test_cursor_parameters_declare_their_format(client: httpx.AsyncClient) -> None:
    """Cursors were `string, maxLength 200` (or null), so a fuzzer took any 200 characters for a
    valid cursor and reported the 422 `invalid_cursor` as a valid request refused."""
    schema = (await client.get("/openapi.json")).json()
    cursors = [
        parameter["schema"]
        for path_item in schema["paths"].values()
        for operation in path_item.values()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "cursor"
    ]
    assert len(cursors) == 11
    for cursor in cursors:
        assert cursor["type"] == "string"
        assert cursor["format"] == "cursor"
        assert "anyOf" not in cursor
