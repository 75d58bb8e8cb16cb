"""The OpenAPI document of the whole application: its description, tags, links between
operations, and problem responses everywhere with their real content type. Part of the
composition root, beside `kith.main`: it names every domain's tags and operations.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from kith.auth.dependencies import API_KEY_SCHEME
from kith.core.errors import PROBLEM_CONTENT_TYPE, Problem
from kith.core.urls import API_PREFIX, MEDIA_PATH
from kith.http.ratelimit import counts_against_general_limit

GENERAL_LIMIT = (
    "`rate_limited`: over the general limit (300 requests per 5 minutes per user, or per IP "
    "address when anonymous, by default). `Retry-After` says when to retry."
)

DESCRIPTION = f"""
Kith is a friends-based social network API: accounts, friendships, posts, a news feed
and live notifications.

**Paths.** Kith's own API is under `{API_PREFIX}`; media files are served at
`{MEDIA_PATH}{{key}}`, and health, readiness and these docs at the root. `/api/v1` and `/api/v2`
are kept for the Mastodon-compatible API.

**Authentication.** Send `Authorization: Bearer <access token>` (from `POST {API_PREFIX}/auth/login`,
or the *Authorize* button, which uses `POST {API_PREFIX}/auth/token`) or `X-API-Key: <key>`.

**Errors** are RFC 9457 problem details (`application/problem+json`) with a stable `code`;
validation errors (422) list each field in `errors`. Every response carries `X-Request-ID`.

**Lists** use cursor pagination: `?limit=` (1–100, default 20) and `?cursor=` from
`next_cursor` (also in the `Link: rel="next"` header). Directory lists (user search, admin
users) use `?page=` and `?page_size=` and report `total`.

**Rate limits.** Every API request counts against a general limit per user (per IP address
when anonymous); logins, registration, password resets, posts, comments, friend requests
and uploads have their own. Limited responses carry `RateLimit-Limit`, `RateLimit-Remaining`
and `RateLimit-Reset` (seconds); a 429 `rate_limited` adds `Retry-After`.

**Retries.** Create endpoints accept `Idempotency-Key`: a retry with the same key and body
returns the first answer (`Idempotent-Replayed: true`) and creates nothing.
"""


# The header every secured operation takes, described as what it is: a bearer JWT. The
# OAuth2 scheme FastAPI derives from the dependency stays too (Swagger UI's Authorize
# button logs in through it), but tools that send or strip credentials (clients,
# fuzzers) only understand `Authorization: Bearer` from an `http` scheme.
BEARER_SCHEME = "BearerToken"
BEARER_DEFINITION = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "`Authorization: Bearer <access token>`, the token from `/auth/login`, "
    "`/auth/token` or `/auth/refresh`.",
}
OAUTH2_SCHEME = "OAuth2PasswordBearer"


API_KEY_SCHEME_NAME = "APIKeyHeader"


def _declare_bearer(schema: dict[str, Any]) -> None:
    """Beside the OAuth2 scheme of `kith.auth.dependencies.Credentials`: the bearer token and
    the API key, which the same dependency reads (one dependency, not one per scheme)."""
    schemes = schema["components"].setdefault("securitySchemes", {})
    schemes[API_KEY_SCHEME_NAME] = API_KEY_SCHEME
    schemes[BEARER_SCHEME] = BEARER_DEFINITION
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            security = operation.get("security")
            if security and any(OAUTH2_SCHEME in requirement for requirement in security):
                position = next(i for i, requirement in enumerate(security) if OAUTH2_SCHEME in requirement)
                security[position + 1 : position + 1] = [{BEARER_SCHEME: []}, {API_KEY_SCHEME_NAME: []}]


def _not_null(value: dict[str, Any]) -> dict[str, Any]:
    branches = value.get("anyOf", [])
    kept = [branch for branch in branches if branch != {"type": "null"}]
    if len(branches) == 2 and len(kept) == 1:
        rest = {key: item for key, item in value.items() if key != "anyOf"}
        return {**kept[0], **rest}
    return value


def _plain_parameters(schema: dict[str, Any]) -> None:
    """`anyOf: [T, null]` of an optional parameter or form field becomes `T`: a query,
    header or form value is absent or text on the wire, never null. Keywords beside the
    `anyOf` (`format`, `description`) move into `T`, where they apply."""
    components = schema.get("components", {}).get("schemas", {})
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _not_null(parameter.get("schema", {}))
            form = (
                operation.get("requestBody", {}).get("content", {}).get("application/x-www-form-urlencoded")
            )
            reference = form["schema"].get("$ref", "") if form else ""
            properties = components.get(reference.rsplit("/", 1)[-1], {}).get("properties", {})
            for name, value in properties.items():
                properties[name] = _not_null(value)


def _alternatives_as_constraints(schema: dict[str, Any]) -> None:
    """A body model's "give `content` or `media_ids`" rule (`anyOf`/`oneOf` beside its
    `properties`) moves into `allOf`, which means the same in JSON Schema.

    Code generators read a top-level `anyOf` as "the body is one of these types" and make a
    type of each branch (a login body with an e-mail but no password); under `allOf` they
    keep the model's own properties and leave the rule to the server.
    """
    for component in schema.get("components", {}).get("schemas", {}).values():
        for keyword in ("anyOf", "oneOf"):
            if keyword in component and "properties" in component:
                component.setdefault("allOf", []).append({keyword: component.pop(keyword)})


# OpenAPI links: how the answer of one operation feeds the next (the id of a new post into
# `GET /posts/{post_id}`, a new user into a friend request). Clients and code generators
# read them; stateful fuzzing follows them (docs/security.md). Keyed by the source
# operation and its status: (method, path, status) -> {name: (method, path, link)}.
_P = API_PREFIX
_ID = "$response.body#/id"
_POST = {"post_id": _ID}
_USER = {"user_id": _ID}
LinkTarget = tuple[str, str, dict[str, Any]]
LINKS: dict[tuple[str, str, str], dict[str, LinkTarget]] = {
    ("post", f"{_P}/auth/register", "201"): {
        "GetUser": ("get", f"{_P}/users/{{user_id}}", {"parameters": _USER}),
        "ListPostsOfUser": ("get", f"{_P}/users/{{user_id}}/posts", {"parameters": _USER}),
        "ListFriendsOfUser": ("get", f"{_P}/users/{{user_id}}/friends", {"parameters": _USER}),
        "SendFriendRequest": ("post", f"{_P}/friend-requests", {"requestBody": {"receiver_id": _ID}}),
        "BlockUser": ("post", f"{_P}/blocks", {"requestBody": {"user_id": _ID}}),
        "UnblockUser": ("delete", f"{_P}/blocks/{{user_id}}", {"parameters": _USER}),
        "Unfriend": ("delete", f"{_P}/friends/{{user_id}}", {"parameters": _USER}),
        "ReportUser": ("post", f"{_P}/reports", {"requestBody": {"target_type": "user", "target_id": _ID}}),
        "UpdateUserAsAdmin": ("patch", f"{_P}/admin/users/{{user_id}}", {"parameters": _USER}),
        "DeleteUserAsAdmin": ("delete", f"{_P}/admin/users/{{user_id}}", {"parameters": _USER}),
    },
    ("post", f"{_P}/friend-requests", "201"): {
        "GetFriendRequest": (
            "get",
            f"{_P}/friend-requests/{{request_id}}",
            {"parameters": {"request_id": _ID}},
        ),
        "AnswerFriendRequest": (
            "patch",
            f"{_P}/friend-requests/{{request_id}}",
            {"parameters": {"request_id": _ID}},
        ),
        "CancelFriendRequest": (
            "delete",
            f"{_P}/friend-requests/{{request_id}}",
            {"parameters": {"request_id": _ID}},
        ),
        "Unfriend": (
            "delete",
            f"{_P}/friends/{{user_id}}",
            {"parameters": {"user_id": "$response.body#/receiver/id"}},
        ),
    },
    ("post", f"{_P}/blocks", "201"): {
        "UnblockUser": (
            "delete",
            f"{_P}/blocks/{{user_id}}",
            {"parameters": {"user_id": "$response.body#/user/id"}},
        ),
    },
    ("post", f"{_P}/posts", "201"): {
        "GetPost": ("get", f"{_P}/posts/{{post_id}}", {"parameters": _POST}),
        "UpdatePost": ("patch", f"{_P}/posts/{{post_id}}", {"parameters": _POST}),
        "DeletePost": ("delete", f"{_P}/posts/{{post_id}}", {"parameters": _POST}),
        "LikePost": ("post", f"{_P}/posts/{{post_id}}/like", {"parameters": _POST}),
        "UnlikePost": ("delete", f"{_P}/posts/{{post_id}}/like", {"parameters": _POST}),
        "ListLikes": ("get", f"{_P}/posts/{{post_id}}/likes", {"parameters": _POST}),
        "AddComment": ("post", f"{_P}/posts/{{post_id}}/comments", {"parameters": _POST}),
        "ListComments": ("get", f"{_P}/posts/{{post_id}}/comments", {"parameters": _POST}),
        "ReportPost": ("post", f"{_P}/reports", {"requestBody": {"target_type": "post", "target_id": _ID}}),
        "ListPostsOfAuthor": (
            "get",
            f"{_P}/users/{{user_id}}/posts",
            {"parameters": {"user_id": "$response.body#/author/id"}},
        ),
    },
    ("post", f"{_P}/posts/{{post_id}}/comments", "201"): {
        "UpdateComment": ("patch", f"{_P}/comments/{{comment_id}}", {"parameters": {"comment_id": _ID}}),
        "DeleteComment": ("delete", f"{_P}/comments/{{comment_id}}", {"parameters": {"comment_id": _ID}}),
        "ReportComment": (
            "post",
            f"{_P}/reports",
            {"requestBody": {"target_type": "comment", "target_id": _ID}},
        ),
        "ListComments": (
            "get",
            f"{_P}/posts/{{post_id}}/comments",
            {"parameters": {"post_id": "$response.body#/post_id"}},
        ),
    },
    ("post", f"{_P}/media", "201"): {
        "AttachToPost": ("post", f"{_P}/posts", {"requestBody": {"media_ids": [_ID]}}),
        "MakeAvatar": ("patch", f"{_P}/users/me", {"requestBody": {"avatar_media_id": _ID}}),
    },
    ("post", f"{_P}/users/me/api-keys", "201"): {
        "DeleteApiKey": ("delete", f"{_P}/users/me/api-keys/{{key_id}}", {"parameters": {"key_id": _ID}}),
    },
    ("post", f"{_P}/users/me/exports", "202"): {
        "GetExport": ("get", f"{_P}/users/me/exports/{{export_id}}", {"parameters": {"export_id": _ID}}),
        "DownloadExport": (
            "get",
            f"{_P}/users/me/exports/{{export_id}}/archive",
            {"parameters": {"export_id": _ID}},
        ),
        "CreateExportDownloadLink": (
            "post",
            f"{_P}/users/me/exports/{{export_id}}/links",
            {"parameters": {"export_id": _ID}},
        ),
    },
    ("post", f"{_P}/reports", "201"): {
        "ActOnReport": (
            "patch",
            f"{_P}/moderation/reports/{{report_id}}",
            {"parameters": {"report_id": _ID}},
        ),
    },
}


def _declare_links(schema: dict[str, Any]) -> None:
    paths = schema.get("paths", {})
    for (method, path, status), links in LINKS.items():
        response = paths[path][method]["responses"][status]
        response["links"] = {
            name: {"operationId": paths[target_path][target_method]["operationId"], **link}
            for name, (target_method, target_path, link) in links.items()
        }


def install_openapi(app: FastAPI, *, rate_limited: bool = True) -> None:
    """Serve an OpenAPI document in which every operation lists its error responses."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=DESCRIPTION,
            routes=app.routes,
            tags=[
                {
                    "name": "auth",
                    "description": "Registration, login, tokens, e-mail verification, password reset.",
                },
                {"name": "users", "description": "Profiles, search, password, account deletion, API keys."},
                {"name": "social", "description": "Friend requests, friendships and blocks."},
                {"name": "posts", "description": "Posts with visibility, likes and comments."},
                {"name": "feed", "description": "The news feed."},
                {"name": "media", "description": "Image uploads and the files they serve."},
                {"name": "moderation", "description": "Reports; moderators and admins resolve them."},
                {
                    "name": "notifications",
                    "description": f"Notifications; live ones arrive on `WebSocket {API_PREFIX}/stream`.",
                },
                {
                    "name": "exports",
                    "description": "Archives of your own data, built in the background.",
                },
                {"name": "admin", "description": "Admin only: user directory, roles, suspension, audit log."},
                {"name": "operations", "description": "Health and readiness probes."},
            ],
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        for defn in components["Problem"].pop("$defs", {}).items():
            components.setdefault(defn[0], defn[1])
        _declare_bearer(schema)
        _plain_parameters(schema)
        _declare_links(schema)
        _alternatives_as_constraints(schema)
        # Every 422 is a Problem (below); FastAPI's own shapes for it are never sent.
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        problem_ref = {"$ref": "#/components/schemas/Problem"}
        for path, path_item in schema.get("paths", {}).items():
            for method, operation in path_item.items():
                responses = operation.setdefault("responses", {})
                if rate_limited and counts_against_general_limit(method.upper(), path):
                    responses.setdefault("429", {"description": GENERAL_LIMIT})
                responses.setdefault("500", {"description": "Unexpected error; no internals are shown."})
                if any(param.get("name") == "Idempotency-Key" for param in operation.get("parameters", [])):
                    responses.setdefault("409", {"description": "`idempotency_in_progress` (and others)."})
                for code, response in responses.items():
                    if code.startswith(("4", "5")):
                        response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": problem_ref}}
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
