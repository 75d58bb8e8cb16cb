"""What fuzzing Kith against its own OpenAPI description found (and a few things the
OWASP tests in tests/security found), one regression test each.

Every test here failed before its fix. The fuzzing itself lives in `test_schemathesis.py`
and `test_http.py`; these pin each finding down so it cannot come back unnoticed on a
run that happens not to generate the same input.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import email_validator
import httpx
import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from kith.admin.schemas import AdminUserUpdate
from kith.auth.schemas import LoginRequest, RefreshRequest, RegisterRequest
from kith.core.config import Settings
from kith.main import create_app
from kith.moderation.schemas import ReportCreate
from kith.notifications.schemas import MarkRead
from kith.posts.schemas import CommentCreate, PostCreate, PostUpdate
from kith.runtime.resources import Resources
from kith.social.schemas import FriendRequestCreate
from kith.users.schemas import ApiKeyCreate, ProfileUpdate
from tests.helpers import API, assert_problem
from tests.posting import create_post, member


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
    assert len(cursors) == 12
    for cursor in cursors:
        assert cursor["type"] == "string"
        assert cursor["format"] == "cursor"
        assert "anyOf" not in cursor


# Characters where the pattern and the validators could disagree: controls, what trimming
# removes, and look-alikes that it does not (U+FEFF, U+200B).
_TRICKY = st.sampled_from(
    list("\x00\x07\t\n\x0b\x0c\r\x1c\x1f \x7f\x85\x9b\xa0\u1680\u2000\u2028\u3000\ufeff\u200baZ_-\xe9")
)
_REGISTRATION = {"email": "ada@example.com", "password": "a fine long passphrase"}
# (model, field, the other fields a valid body needs, the field's limits after trimming)
TEXT_FIELDS: list[tuple[type[BaseModel], str, dict[str, Any], tuple[int, int]]] = [
    (ProfileUpdate, "display_name", {}, (1, 50)),
    (ProfileUpdate, "bio", {}, (0, 500)),
    (ProfileUpdate, "avatar_media_id", {}, (1, 64)),
    (ApiKeyCreate, "name", {}, (1, 100)),
    (PostCreate, "content", {}, (0, 5000)),
    (CommentCreate, "content", {}, (1, 2000)),
    (ReportCreate, "reason", {"target_type": "user", "target_id": "x"}, (1, 1000)),
    (ReportCreate, "target_id", {"target_type": "user", "reason": "spam"}, (1, 36)),
    (RegisterRequest, "username", _REGISTRATION, (3, 30)),
    (LoginRequest, "username", {"password": "x"}, (0, 254)),
    (FriendRequestCreate, "receiver_id", {}, (1, 100)),
    (RefreshRequest, "refresh_token", {}, (1, 512)),
]


def _pattern(model: type[BaseModel], field: str) -> str:
    schema = model.model_json_schema()["properties"][field]
    branches = schema.get("anyOf", [schema])
    pattern: str = next(branch["pattern"] for branch in branches if branch.get("type") == "string")
    return pattern


def _accepted(model: type[BaseModel], body: dict[str, Any]) -> bool:
    try:
        model.model_validate(body)
    except ValidationError:
        return False
    return True


_FIELD_IDS = [f"{model.__name__}.{field}" for model, field, _, _ in TEXT_FIELDS]


@pytest.mark.parametrize(("model", "field", "others", "limits"), TEXT_FIELDS, ids=_FIELD_IDS)
# JSON over UTF-8 cannot carry lone surrogates (category Cs).
@given(text=st.text(alphabet=st.one_of(_TRICKY, st.characters(exclude_categories=["Cs"])), max_size=12))
def test_text_patterns_say_what_the_validators_accept(
    model: type[BaseModel], field: str, others: dict[str, Any], limits: tuple[int, int], text: str
) -> None:
    """Text fields were plain strings in the OpenAPI description, while the server refuses
    control characters (and, for required fields, text that trimming leaves empty): a
    fuzzer's schema-valid report reason with U+001C was a 422."""
    accepted = _accepted(model, {**others, field: text})
    assert bool(re.fullmatch(_pattern(model, field), text)) == accepted


@pytest.mark.parametrize(("model", "field", "others", "limits"), TEXT_FIELDS, ids=_FIELD_IDS)
def test_string_limits_count_after_trimming_in_the_schema_too(
    model: type[BaseModel], field: str, others: dict[str, Any], limits: tuple[int, int]
) -> None:
    """`maxLength` counted the spaces the server trims: a comment of 2000 characters plus
    surrounding blanks broke the schema and was accepted (ST201). Limits live in the pattern now."""
    shortest, longest = limits
    pattern = _pattern(model, field)
    for text, accepted in (
        (" \u3000" + "a" * longest + "\n ", True),
        ("a" * (longest + 1), False),
        ("\t" + "a" * max(shortest, 1) + " ", True),
        (" " * 3 + "a" * (shortest - 1), shortest == 0),
    ):
        assert _accepted(model, {**others, field: text}) == accepted, text[:20]
        assert bool(re.fullmatch(pattern, text)) == accepted, text[:20]
    schema = model.model_json_schema()["properties"][field]
    assert not {"minLength", "maxLength"} & {
        key for branch in schema.get("anyOf", [schema]) for key in branch
    }


@functools.cache
def _served_document() -> dict[str, Any]:
    document: dict[str, Any] = create_app(Settings(env="test", secret_key="k" * 32, _env_file=None)).openapi()
    return document


@functools.cache
def _served_schema(name: str) -> jsonschema_rs.Validator:
    """A validator for one request body as `/openapi.json` describes it."""
    document = _served_document()
    return jsonschema_rs.validator_for(
        {**document["components"]["schemas"][name], "components": document["components"]}
    )


# Bodies whose validity hangs on which fields are present, and whether they are null.
COMBINED_FIELDS: list[tuple[type[BaseModel], dict[str, list[Any]], dict[str, Any]]] = [
    (
        LoginRequest,
        {"email": [None, "ada@example.com", ""], "username": [None, "ada", ""]},
        {"password": "x"},
    ),
    (MarkRead, {"ids": [None, [], ["x"]], "all": [None, True, False]}, {}),
    (AdminUserUpdate, {"role": [None, "admin"], "suspended": [None, True, False]}, {}),
    (PostUpdate, {"content": [None, "", "hi"], "visibility": [None, "public"]}, {}),
    (
        ApiKeyCreate,
        {"scopes": [[], ["read"], ["write"], ["write", "write"], ["write", "read"]]},
        {"name": "k"},
    ),
]


@pytest.mark.parametrize(
    ("model", "fields", "others"), COMBINED_FIELDS, ids=[model.__name__ for model, _, _ in COMBINED_FIELDS]
)
@settings(deadline=None)
@given(data=st.data())
def test_rules_across_fields_are_in_the_schema(
    model: type[BaseModel], fields: dict[str, list[Any]], others: dict[str, Any], data: st.DataObject
) -> None:
    """Rules between fields lived only in validators (exactly one of `email` or `username`;
    `ids` or `all: true`; at least one change; API key scopes include `read`), so
    schema-valid bodies such as `{"all": false, "ids": []}`, `{"role": null, "suspended": null}`
    or `{"scopes": ["write", "write"]}` were 422s."""
    body = data.draw(
        st.fixed_dictionaries({}, optional={name: st.sampled_from(values) for name, values in fields.items()})
    )
    try:
        model.model_validate({**others, **body})
        accepted = True
    except ValidationError:
        accepted = False
    assert _served_schema(model.__name__).is_valid({**others, **body}) == accepted, body


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"content": "hi"}, True),
        ({"content": "  \n "}, False),
        ({"content": ""}, False),
        ({}, False),
        ({"content": "", "media_ids": []}, False),
        ({"media_ids": ["a"]}, True),
        ({"media_ids": ["a", "a"]}, False),
    ],
)
async def test_a_post_needs_text_or_images_in_the_schema_too(
    client: httpx.AsyncClient, resources: Resources, body: dict[str, Any], valid: bool
) -> None:
    """`{"content": "", "media_ids": []}` matched the schema of `POST /posts` and was a 422."""
    ada = await member(resources, "ada")
    assert _served_schema("PostCreate").is_valid(body) == valid
    response = await client.post(f"{API}/posts", json=body, headers=ada.headers)
    if not valid:
        assert_problem(response, 422, "validation_error")


async def test_email_fields_name_the_domains_they_refuse(client: httpx.AsyncClient) -> None:
    """`format: email` allowed `}@0wesh6.test`, which the server refuses (a special-use domain):
    a schema-valid password-reset request was a 422. The description now names them all."""
    description = _served_document()["components"]["schemas"]["PasswordResetRequest"]["properties"]["email"][
        "description"
    ]
    named = set(re.findall(r"`\.([a-z]+)`", description))
    assert named == set(email_validator.SPECIAL_USE_DOMAIN_NAMES)
    for domain in named:
        response = await client.post(f"{API}/auth/password-reset", json={"email": f"ada@kith.{domain}"})
        assert_problem(response, 422, "validation_error")


async def test_email_fields_name_the_reserved_label_form_they_refuse(client: httpx.AsyncClient) -> None:
    """`format: email` allowed `!QJ@d7--td.com` (`--` as a label's third and fourth
    characters, reserved for Punycode), which the server refuses: a schema-valid
    registration was a 422. The description now says so; a real A-label still passes."""
    description = _served_document()["components"]["schemas"]["RegisterRequest"]["properties"]["email"][
        "description"
    ]
    assert "`--` as its third and fourth characters" in description
    response = await client.post(f"{API}/auth/password-reset", json={"email": "ada@d7--td.com"})
    assert_problem(response, 422, "validation_error")
    response = await client.post(f"{API}/auth/password-reset", json={"email": "ada@xn--bcher-kva.com"})
    assert response.status_code == 202, response.text


def test_passwords_under_the_policy_have_format_password() -> None:
    """A generated password `00000000` matched the schema of `POST /auth/register` and was a 422
    (a common password): the fields under the policy now say so, with `format: password`."""
    schemas = _served_document()["components"]["schemas"]
    for model, field in (
        ("RegisterRequest", "password"),
        ("PasswordChange", "new_password"),
        ("PasswordResetConfirm", "new_password"),
    ):
        prop = schemas[model]["properties"][field]
        assert prop["format"] == "password"
        assert "common password" in prop["description"]


async def test_the_upload_form_refuses_other_parts_in_the_schema_too(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """The multipart schema of `POST /media` allowed parts besides `file`, which the server
    refuses with 422 (no mass assignment, as for JSON bodies)."""
    body = _served_document()["paths"][f"{API}/media"]["post"]["requestBody"]["content"][
        "multipart/form-data"
    ]
    assert body["schema"]["additionalProperties"] is False
    ada = await member(resources, "ada")
    response = await client.post(
        f"{API}/media", files={"file": ("a.png", b"x"), "caption": (None, "hi")}, headers=ada.headers
    )
    assert_problem(response, 422, "validation_error")


async def test_rules_of_stored_state_are_400_not_422(client: httpx.AsyncClient, resources: Resources) -> None:
    """Schema-valid requests refused because of what is stored (an upload id that is not one
    of the caller's free uploads, emptying a post that has no images, an expiry already past)
    were 422 `validation_error`, which says the request itself is invalid. They are 400 with
    a code of their own, like every other rule of the current state (docs/api.md#conventions)."""
    ada = await member(resources, "ada")
    unknown = "01234567-89ab-7def-8123-456789abcdef"
    post = await create_post(client, ada, content="hello")
    cases: list[tuple[str, str, dict[str, Any], str]] = [
        ("POST", "/posts", {"media_ids": [unknown]}, "media_not_available"),
        ("PATCH", "/users/me", {"avatar_media_id": unknown}, "media_not_available"),
        ("PATCH", f"/posts/{post['id']}", {"content": " "}, "post_needs_content"),
        (
            "POST",
            "/users/me/api-keys",
            {"name": "old", "expires_at": "2001-01-01T00:00:00Z"},
            "expiry_in_past",
        ),
    ]
    for method, path, json, code in cases:
        response = await client.request(method, f"{API}{path}", json=json, headers=ada.headers)
        body = assert_problem(response, 400, code)
        assert len(body["errors"]) == 1


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (AdminUserUpdate, {"suspended": 0}),
        (AdminUserUpdate, {"suspended": "true"}),
        (MarkRead, {"all": 1}),
        (ApiKeyCreate, {"name": "k", "expires_at": 4102444800}),
    ],
)
def test_bodies_take_the_json_types_the_schema_names(model: type[BaseModel], body: dict[str, Any]) -> None:
    """`{"suspended": 0}` suspended nobody but was accepted (lax booleans), and an API key's
    `expires_at` took a number as seconds since the epoch, where the schema says boolean and
    date-time text: schema-violating requests that succeeded."""
    assert not _served_schema(model.__name__).is_valid(body)
    with pytest.raises(ValidationError):
        model.model_validate(body)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", f"{API}/posts"),
        ("patch", f"{API}/posts/{{post_id}}"),
        ("patch", f"{API}/users/me"),
        ("post", f"{API}/users/me/api-keys"),
    ],
)
def test_operations_document_their_400(method: str, path: str) -> None:
    """The 400s of rules of the stored state were not among the documented responses (ST103)."""
    responses = _served_document()["paths"][path][method]["responses"]
    assert "400" in responses
    assert "application/problem+json" in responses["400"]["content"]


def test_the_upload_form_names_the_image_types_it_takes() -> None:
    """The `file` part was any binary string, so a schema-valid empty file drew a 415
    (ST202). The description now declares the part's content types, the four the server
    decodes (it still judges the bytes, not the declared type)."""
    body = _served_document()["paths"][f"{API}/media"]["post"]["requestBody"]["content"][
        "multipart/form-data"
    ]
    declared = {part.strip() for part in body["encoding"]["file"]["contentType"].split(",")}
    assert declared == {"image/jpeg", "image/png", "image/gif", "image/webp"}


async def test_the_token_form_says_its_fields_are_never_blank(client: httpx.AsyncClient) -> None:
    """`username=&password=x` matched the form's schema (any string) and was a 422, since an
    empty form field counts as missing; schemathesis flagged `POST /auth/token` for rejecting
    most schema-valid data. The form now documents `minLength: 1`."""
    form = _served_document()["components"]["schemas"]["PasswordGrantForm"]
    assert form["properties"]["username"]["minLength"] == 1
    assert form["properties"]["password"]["minLength"] == 1
    for body in ({"username": "", "password": "x"}, {"username": "ada", "password": ""}):
        assert_problem(await client.post(f"{API}/auth/token", data=body), 422, "validation_error")
    response = await client.post(f"{API}/auth/token", data={"username": "nobody", "password": "x"})
    assert_problem(response, 401, "invalid_credentials")


_CURSOR_WITH_NUL = "eyJhZnRlciI6ImFcdTAwMDBiIn0"  # {"after": "a\u0000b"}


@pytest.mark.parametrize(
    ("method", "path", "body", "params", "status"),
    [
        ("POST", "/blocks", {"user_id": "a\x00b"}, None, 422),
        ("POST", "/friend-requests", {"receiver_id": "a\x00b"}, None, 422),
        ("POST", "/reports", {"target_type": "user", "target_id": "a\x00", "reason": "spam"}, None, 422),
        ("POST", "/posts", {"media_ids": ["a\x00"]}, None, 422),
        ("PATCH", "/users/me", {"avatar_media_id": "a\x00"}, None, 422),
        ("POST", "/auth/login", {"username": "a\x00", "password": "x"}, None, 422),
        ("POST", "/notifications/read", {"ids": ["a\x00"]}, None, 422),
        ("GET", "/users", None, {"q": "a\x00"}, 422),
        ("GET", "/feed", None, {"cursor": _CURSOR_WITH_NUL}, 422),
        ("GET", "/users/a%00b", None, None, 404),
        ("GET", "/posts/a%00b/comments", None, None, 404),
        ("DELETE", "/users/me/api-keys/a%00b", None, None, 404),
    ],
)
async def test_nul_characters_are_refused_before_they_reach_the_database(
    client: httpx.AsyncClient,
    resources: Resources,
    method: str,
    path: str,
    body: Any,
    params: dict[str, str] | None,
    status: int,
) -> None:
    """A long HTTP run on PostgreSQL found `{"user_id": "\\f\\"\\u0000..."}` on `POST /blocks` to be a
    500: PostgreSQL can neither store nor compare NUL, and any string that reached a query
    with one (ids in bodies, paths and cursors, login names, search terms) failed there.
    Bodies refuse NUL in validation (and their patterns say so), URLs at the edge."""
    ada = await member(resources, "ada")
    response = await client.request(method, f"{API}{path}", json=body, params=params, headers=ada.headers)
    assert_problem(response, status)


async def test_the_token_form_refuses_nul_too(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/auth/token", data={"username": "a\x00", "password": "x"})
    assert_problem(response, 422, "validation_error")


async def test_the_token_form_refuses_undeclared_fields_and_takes_swagger_uis(
    client: httpx.AsyncClient,
) -> None:
    """Found by the API3 tests: the OAuth2 form ignored fields it does not declare, where every
    JSON body refuses them (no mass assignment), and its schema did not say either way."""
    form = _served_document()["components"]["schemas"]["PasswordGrantForm"]
    assert form["additionalProperties"] is False
    smuggled = await client.post(
        f"{API}/auth/token", data={"username": "a", "password": "b", "role": "admin"}
    )
    body = assert_problem(smuggled, 422, "validation_error")
    assert {error["field"] for error in body["errors"]} == {"body.role"}
    # What Swagger UI's Authorize button sends, empty optional fields included.
    swagger = {"grant_type": "password", "username": "nobody", "password": "x", "scope": "", "client_id": ""}
    assert_problem(await client.post(f"{API}/auth/token", data=swagger), 401, "invalid_credentials")


@pytest.mark.parametrize("depth", [1_000, 200_000])
async def test_json_nested_too_deeply_is_malformed_json(
    client: httpx.AsyncClient, resources: Resources, depth: int
) -> None:
    """Found by the API4 tests: `[[[...]]]` a thousand levels deep made Python's JSON parser
    give up (RecursionError), which FastAPI reported as an undocumented 400."""
    ada = await member(resources, "ada")
    body = ("[" * depth + "]" * depth).encode()
    response = await client.post(
        f"{API}/posts", content=body, headers={**ada.headers, "Content-Type": "application/json"}
    )
    assert_problem(response, 422, "malformed_json")


@pytest.mark.parametrize("content_type", ["multipart/form-data; boundary=xx", "multipart/form-data"])
async def test_a_broken_multipart_form_is_malformed_multipart(
    client: httpx.AsyncClient, content_type: str
) -> None:
    """Found by the API4 tests: a multipart body that Starlette could not parse was a bare 400
    on `POST /auth/token` (not among its documented answers); the upload route already said
    422 `malformed_multipart` for the same thing."""
    response = await client.post(
        f"{API}/auth/token", content=b"garbage", headers={"Content-Type": content_type}
    )
    assert_problem(response, 422, "malformed_multipart")


def test_form_fields_are_never_null_in_the_schema() -> None:
    """Optional fields of the OAuth2 form were `anyOf: [string, null]`; a form has no null, so
    fuzzers sent the text `null`, which `grant_type` rightly refused (schemathesis: most
    generated data for `POST /auth/token` rejected)."""
    form = _served_document()["components"]["schemas"]["PasswordGrantForm"]
    for name, field in form["properties"].items():
        assert "anyOf" not in field, name
    assert form["properties"]["grant_type"]["const"] == "password"
