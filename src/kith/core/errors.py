"""Errors the API reports, as classes: each code is one class with its status, default
detail and the description its problem page shows (RFC 9457 problem details).

Services raise a `DomainError` subclass; `kith.http.errors` renders every error, framework
ones included, as `application/problem+json` with its stable `code`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, Field

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
    # Whether `code` is one of OAuth 2's error codes (RFC 6749), which `/oauth` answers as is.
    oauth: ClassVar[bool] = False

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


class MisdirectedRequest(DomainError):
    status = 421
    code = "misdirected_request"
    default_detail = "The request names a host this server does not serve."
    description = (
        "The request target names a host this server does not serve (an absolute-form "
        "target such as `GET http://other.example/ HTTP/1.1`); send it to that host."
    )


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


# --- OAuth 2's errors (RFC 6749 §4.1.2.1, §5.2), for the sign-in of Mastodon apps -----------


class InvalidOAuthRequest(BadRequest):
    code = "invalid_request"
    oauth = True
    default_detail = "The request is missing a parameter or has a wrong one."
    description = "An OAuth request is missing a required parameter or has an invalid one."


class InvalidClient(Unauthorized):
    code = "invalid_client"
    oauth = True
    default_detail = "Client authentication failed: unknown client or wrong secret."
    description = "The OAuth client (a registered app) is unknown, or its secret is wrong."


class InvalidGrant(BadRequest):
    code = "invalid_grant"
    oauth = True
    default_detail = "The authorization code or refresh token is invalid, expired, used or revoked."
    description = (
        "The authorization code or refresh token is invalid, expired, already used or revoked, "
        "or was issued to another app or redirect URI, or the PKCE verifier does not match."
    )


class UnsupportedGrantType(BadRequest):
    code = "unsupported_grant_type"
    oauth = True
    default_detail = "This grant type is not supported."
    description = "The OAuth grant type is not supported by this server."


class UnsupportedResponseType(BadRequest):
    code = "unsupported_response_type"
    oauth = True
    default_detail = "Only the `code` response type is supported."
    description = "The OAuth response type is not supported (only `code` is)."


class InvalidScope(BadRequest):
    code = "invalid_scope"
    oauth = True
    default_detail = "A requested scope is unknown or not allowed for this app."
    description = "A requested OAuth scope is unknown, or was not registered by the app."


class AccessDenied(Forbidden):
    code = "access_denied"
    oauth = True
    default_detail = "The user or the server denied the request."
    description = "The user declined to authorize the app, or the server refused it."


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
