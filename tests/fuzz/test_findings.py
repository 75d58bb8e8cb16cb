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
