"""Domain errors and their rendering as RFC 9457 problem details.

Services raise a `DomainError` subclass; one handler turns every error, including
framework ones (unknown route, wrong method, validation) and unexpected exceptions,
into `application/problem+json` with a stable `code`.
"""

from __future__ import annotations

import re
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
    """An error the API reports to its client: one subclass per problem type (`code`).

    A class that declares `code` must declare the one-line `description` that the code's
    page at `/problems/<code>` shows (docs/api.md#conventions); a subclass that declares
    neither is the same problem type, raised from elsewhere. Codes therefore exist only as
    classes, and `problem_types()` lists them all for the pages.
    """

    status: ClassVar[int]
    code: ClassVar[str]
    default_detail: ClassVar[str]
    description: ClassVar[str]
    # An error that records something on purpose (a revoked session after refresh-token
    # reuse) keeps the transaction's changes; every other error rolls them back.
    keeps_changes: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            return
        if not _CODE_PATTERN.fullmatch(cls.code):
            raise TypeError(f"{cls.__qualname__}.code {cls.code!r} is not snake_case")
        description = cls.__dict__.get("description")
        if not description:
            raise TypeError(f"{cls.__qualname__} declares {cls.code!r} without a description for its page")
        # Two classes may share a code (an invalid token is 401 on refresh, 400 on a
        # one-time link) only as one problem type, with one page.
        known = _DESCRIPTIONS.setdefault(cls.code, description)
        if known != description:
            raise TypeError(f"{cls.__qualname__} describes {cls.code!r} differently from an earlier class")

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        self.detail = detail or self.default_detail
        self.headers = dict(headers or {})
        # Field errors, for the validation failures a service finds (rare; schemas find most).
        self.errors: list[dict[str, str]] | None = None if errors is None else [dict(e) for e in errors]
        super().__init__(self.detail)


_CODE_PATTERN = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
_DESCRIPTIONS: dict[str, str] = {}


def problem_types() -> dict[str, str]:
    """Every problem code with its description, from the `DomainError` classes defined so far.

    Each domain defines its errors beside the code that raises them, so the list is complete
    once the app's routers are imported (`create_app` does that).
    """
    return dict(sorted(_DESCRIPTIONS.items()))


class BadRequest(DomainError):
    status = 400
    code = "bad_request"
    default_detail = "The request breaks a rule of this API."
    description = "The request breaks a rule of the API."


class Unauthorized(DomainError):
    status = 401
    code = "not_authenticated"
    default_detail = "Valid credentials are required."
    description = "Send `Authorization: Bearer <token>` or `X-API-Key`."

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer", **(headers or {})})


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    default_detail = "You are not allowed to do this."
    description = "The caller is not allowed to do this."


class NotFound(DomainError):
    status = 404
    code = "not_found"
    default_detail = "The resource does not exist or is not visible to you."
    description = "No such resource, or not visible to the caller."


class UserNotFound(NotFound):
    code = "user_not_found"
    default_detail = "No such user."
    description = "No such user, or not visible to the caller."


class MethodNotAllowed(DomainError):
    status = 405
    code = "method_not_allowed"
    default_detail = "Method Not Allowed"
    description = "The path exists but not with this method; `Allow` lists the methods it takes."


class NotAcceptable(DomainError):
    status = 406
    code = "not_acceptable"
    default_detail = "Not Acceptable"
    description = "The server cannot answer in a media type that `Accept` allows."


class Conflict(DomainError):
    status = 409
    code = "conflict"
    default_detail = "The request conflicts with the current state of the resource."
    description = "The request conflicts with the current state."


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"
    default_detail = "The request body is too large."
    description = "The body is too large."


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"
    default_detail = "The content type is not supported."
    description = "The content type is not supported."


class Unprocessable(DomainError):
    status = 422
    code = "validation_error"
    default_detail = "The request is not valid."
    description = "A field is missing or invalid; `errors` names each one."


class MalformedJson(Unprocessable):
    code = "malformed_json"
    default_detail = "The request body is not valid JSON."
    description = "The body is not valid JSON."


class MalformedMultipart(Unprocessable):
    code = "malformed_multipart"
    default_detail = "The multipart body is not valid."
    description = "The multipart body is not valid: boundary, part headers or closing boundary."


class InvalidHost(BadRequest):
    code = "invalid_host"
    default_detail = "The Host header names a host this server does not serve."
    description = "The `Host` header names a host this server does not serve (docs/configuration.md)."


class HttpError(DomainError):
    """What the framework reports with a status no other class covers; rendered with that status."""

    status = 400
    code = "http_error"
    default_detail = "Bad Request"
    description = "An HTTP error without a more specific code; `status` and `title` say which."


class InternalError(DomainError):
    status = 500
    code = "internal_error"
    default_detail = "Something went wrong on our side. Quote the request id if you report it."
    description = "An unexpected error; quote the request id when reporting it."


class ServiceUnavailable(DomainError):
    status = 503
    code = "service_unavailable"
    default_detail = "The service cannot answer right now; try again shortly."
    description = "A dependency is down; try again shortly."


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
    code: str = Field(examples=[NotFound.code])
    request_id: str | None = Field(default=None, examples=["01J9Z8X4Q2W3E4R5T6Y7U8I9O0"])
    errors: list[FieldError] | None = None


def problem_response(
    request: Request | None,
    error: DomainError,
    *,
    status: int | None = None,
    public_url: str = "",
    request_id: str | None = None,
) -> Response:
    """Render `error` as a problem document. `request` supplies the request id and public URL.

    `status` overrides the class's only for an `HttpError`, which takes the framework's.
    """
    status = status or error.status
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
    # The content type is corrected to application/problem+json in `kith.http.openapi`.
    return {
        status: {"model": Problem, "description": descriptions.get(status, HTTPStatus(status).phrase)}
        for status in statuses
    }
