"""Rendering errors as RFC 9457 problem details, and the handlers that do it for every error.

One handler per kind turns a `DomainError`, a framework error (unknown route, wrong method,
validation, unreadable body) or an unexpected exception into `application/problem+json`
with a stable `code`; the error classes themselves are `kith.core.errors`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from kith.core.errors import (
    PROBLEM_CONTENT_TYPE,
    AccessDenied,
    BadRequest,
    DomainError,
    Forbidden,
    HttpError,
    InvalidClient,
    InvalidOAuthRequest,
    MalformedJson,
    MalformedMultipart,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    Problem,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)
from kith.core.urls import mastodon_face


def problem_response(
    request: Request | None,
    error: DomainError,
    *,
    status: int | None = None,
    public_url: str = "",
    request_id: str | None = None,
    path: str | None = None,
) -> Response:
    """Render `error` as a problem document. `request` supplies the request id, public URL and
    path (`path` stands for it without a request).

    `status` overrides the class's only for an `HttpError`, which takes the framework's. On
    the Mastodon-compatible paths the error takes Mastodon's shape instead (`mastodon_error`).
    """
    status = status or error.status
    if request is not None:
        path = request.scope.get("path", "")
    face = mastodon_face(path or "")
    if face is not None:
        return mastodon_error(error, status, face)
    if request is not None:
        request_id = request_id or request.scope.get("state", {}).get("request_id")
        resources = getattr(request.app.state, "resources", None)
        if resources is not None:
            public_url = resources.settings.public_url
    body: dict[str, Any] = {
        "type": f"{public_url}/problems/{error.code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": error.detail,
        "code": error.code,
        "request_id": request_id,
    }
    if error.errors is not None:
        body["errors"] = list(error.errors)
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=error.headers,
    )


# On `/oauth` an error that is not one of OAuth 2's is named by its status.
_OAUTH_ERROR_BY_STATUS: dict[int, type[DomainError]] = {
    400: InvalidOAuthRequest,
    401: InvalidClient,
    403: AccessDenied,
    413: InvalidOAuthRequest,
    415: InvalidOAuthRequest,
    422: InvalidOAuthRequest,
}


def mastodon_error(error: DomainError, status: int, face: str) -> Response:
    """`error` as Mastodon answers one (docs/mastodon.md#conventions), with Kith's status.

    On `/oauth`, OAuth 2's shape: `error` a code of RFC 6749, `error_description` the sentence.
    On `/api/v1` and `/api/v2`, Mastodon's: `error` the sentence apps show to their user, and
    `error_description` Kith's stable code; a validation failure adds `details`, the fields.
    """
    body: dict[str, Any]
    if face == "oauth":
        named = error if error.oauth else _OAUTH_ERROR_BY_STATUS.get(status, error)
        code = named.code
        body = {"error": code, "error_description": error.detail}
    else:
        body = {"error": error.detail, "error_description": error.code}
        if error.errors is not None:
            body["details"] = list(error.errors)
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=error.headers
    )


_HTTP_ERRORS: dict[int, type[DomainError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    406: NotAcceptable,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def _field_path(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc)


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors():
        message = str(error.get("msg", "invalid value"))
        # Pydantic prefixes custom errors with "Value error, "; the client needs the reason.
        message = message.removeprefix("Value error, ")
        errors.append(
            {
                "field": _field_path(error.get("loc", ())) or "body",
                "message": message,
                "type": str(error.get("type", "value_error")),
            }
        )
    return errors


async def _domain_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return problem_response(request, exc)


# Methods a 405 may list in `Allow`; anything else is never routed.
_ROUTABLE_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route of `app` answers at the request's path.

    Starlette's 405 names only the methods of the first route whose path matched, while
    FastAPI makes one route per method: `Allow` must list them all (RFC 9110 §15.5.6).
    """
    allowed = []
    for method in _ROUTABLE_METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in app.router.routes):
            allowed.append(method)
    return allowed


def _malformed_json(request: Request) -> Response:
    return problem_response(
        request, MalformedJson(errors=[{"field": "body", "message": "invalid JSON", "type": "json_invalid"}])
    )


def _unreadable_body(request: Request, cause: BaseException | None) -> Response | None:
    """A body the framework could not parse, which it reports as a bare, undocumented 400."""
    if isinstance(cause, UnicodeDecodeError | RecursionError):
        # RFC 8259 JSON is UTF-8, and may be refused past a nesting depth (§9): Python's
        # parser stops near 1,000 levels. Malformed JSON, like any other.
        return _malformed_json(request)
    if isinstance(cause, MultiPartException):
        # The same answer the upload route gives a broken multipart body.
        return problem_response(
            request,
            MalformedMultipart(
                errors=[{"field": "body", "message": cause.message, "type": "multipart_invalid"}]
            ),
        )
    return None


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 400:
        unreadable = _unreadable_body(request, exc.__cause__ or exc.__context__)
        if unreadable is not None:
            return unreadable
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).description
    if status == 404:
        detail = "No such resource."
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
    error = _HTTP_ERRORS.get(status, HttpError)(detail, headers=headers)
    return problem_response(request, error, status=status)


async def _validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc)
    if any(error["type"] == "json_invalid" for error in errors):
        return _malformed_json(request)
    return problem_response(request, Unprocessable(errors=errors))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)


# Documented on every route; routes add their own specific codes.
def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the given error statuses."""
    descriptions = {
        400: "A business rule was broken.",
        401: "Missing or invalid credentials.",
        403: "Authenticated, but not allowed by role or scope.",
        404: "Not found, or not visible to the caller.",
        409: "Conflicts with the current state.",
        413: "The body is too large.",
        415: "Unsupported media type.",
        422: "Validation failed; `errors` names each field.",
        429: "Rate limited; see `Retry-After`.",
        503: "Temporarily unavailable.",
    }
    # The content type is corrected to application/problem+json in `kith.openapi`.
    return {
        status: {"model": Problem, "description": descriptions.get(status, HTTPStatus(status).phrase)}
        for status in statuses
    }
