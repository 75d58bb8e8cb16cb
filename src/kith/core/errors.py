"""Domain errors and their rendering as RFC 9457 problem details.

Services raise a `DomainError` subclass; one handler turns every error, including
framework ones (unknown route, wrong method, validation) and unexpected exceptions,
into `application/problem+json` with a stable `code`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

PROBLEM_CONTENT_TYPE = "application/problem+json"


class DomainError(Exception):
    """An error the API reports to its client. Subclasses fix status and default code."""

    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"
    default_detail: ClassVar[str] = "The request breaks a rule of this API."
    # An error that records something on purpose (a revoked session after refresh-token
    # reuse) keeps the transaction's changes; every other error rolls them back.
    keeps_changes: ClassVar[bool] = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.code = code or self.default_code
        self.headers = dict(headers or {})
        # Field errors, for the validation failures a service finds (rare; schemas find most).
        self.errors: list[dict[str, str]] | None = None
        super().__init__(self.detail)


class BadRequest(DomainError):
    status = 400


class Unauthorized(DomainError):
    status = 401
    default_code = "not_authenticated"
    default_detail = "Valid credentials are required."

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(DomainError):
    status = 403
    default_code = "forbidden"
    default_detail = "You are not allowed to do this."


class NotFound(DomainError):
    status = 404
    default_code = "not_found"
    default_detail = "The resource does not exist or is not visible to you."


class Conflict(DomainError):
    status = 409
    default_code = "conflict"
    default_detail = "The request conflicts with the current state of the resource."


class PayloadTooLarge(DomainError):
    status = 413
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


class UnsupportedMediaType(DomainError):
    status = 415
    default_code = "unsupported_media_type"
    default_detail = "The content type is not supported."


class Unprocessable(DomainError):
    status = 422
    default_code = "validation_error"
    default_detail = "The request is not valid."


class ServiceUnavailable(DomainError):
    status = 503
    default_code = "service_unavailable"
    default_detail = "The service cannot answer right now; try again shortly."


class FieldError(BaseModel):
    field: str = Field(examples=["body.email"])
    message: str = Field(examples=["value is not a valid email address"])
    type: str = Field(examples=["value_error"])


class Problem(BaseModel):
    """An RFC 9457 problem details document."""

    type: str = Field(examples=["http://127.0.0.1:8000/problems/not_found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["The resource does not exist or is not visible to you."])
    code: str = Field(examples=["not_found"])
    request_id: str | None = Field(default=None, examples=["01J9Z8X4Q2W3E4R5T6Y7U8I9O0"])
    errors: list[FieldError] | None = None


def problem_response(
    request: Request | None,
    status: int,
    code: str,
    detail: str,
    *,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    public_url: str = "",
    request_id: str | None = None,
) -> Response:
    """Render a problem document. `request` supplies the request id and public URL."""
    if request is not None:
        request_id = request_id or request.scope.get("state", {}).get("request_id")
        resources = getattr(request.app.state, "resources", None)
        if resources is not None:
            public_url = resources.settings.public_url
    body: dict[str, Any] = {
        "type": f"{public_url}/problems/{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    if errors is not None:
        body["errors"] = list(errors)
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
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
    return problem_response(request, exc.status, exc.code, exc.detail, headers=exc.headers, errors=exc.errors)


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
        request,
        422,
        "malformed_json",
        "The request body is not valid JSON.",
        errors=[{"field": "body", "message": "invalid JSON", "type": "json_invalid"}],
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
            422,
            "malformed_multipart",
            "The multipart body is not valid.",
            errors=[{"field": "body", "message": cause.message, "type": "multipart_invalid"}],
        )
    return None


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 400:
        unreadable = _unreadable_body(request, exc.__cause__ or exc.__context__)
        if unreadable is not None:
            return unreadable
    code = _HTTP_CODES.get(status, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).description
    if status == 404:
        detail = "No such resource."
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return problem_response(request, status, code, detail, headers=headers)


async def _validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc)
    if any(error["type"] == "json_invalid" for error in errors):
        return _malformed_json(request)
    return problem_response(request, 422, "validation_error", "The request is not valid.", errors=errors)


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
    # The content type is corrected to application/problem+json in `kith.http.openapi`.
    return {
        status: {"model": Problem, "description": descriptions.get(status, HTTPStatus(status).phrase)}
        for status in statuses
    }
