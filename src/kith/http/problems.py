"""The pages that problem `type` URIs point to: one short explanation per error code."""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from kith.core.errors import NotFound

PROBLEM_CODES: dict[str, str] = {
    "bad_request": "The request breaks a rule of the API.",
    "validation_error": "A field is missing or invalid; `errors` names each one.",
    "malformed_json": "The body is not valid JSON.",
    "invalid_cursor": "The `cursor` parameter did not come from a previous page.",
    "not_authenticated": "Send `Authorization: Bearer <token>` or `X-API-Key`.",
    "invalid_token": "The token is invalid, expired, revoked or already used.",
    "invalid_credentials": "The login or password is wrong.",
    "account_suspended": "The account is suspended.",
    "forbidden": "The caller is not allowed to do this.",
    "insufficient_scope": "The API key is read-only.",
    "insufficient_role": "The caller's role does not allow this.",
    "api_key_not_allowed": "API keys cannot manage credentials or use admin routes.",
    "wrong_password": "The current password is wrong.",
    "not_found": "No such resource, or not visible to the caller.",
    "user_not_found": "No such user, or not visible to the caller.",
    "api_key_not_found": "No such API key.",
    "method_not_allowed": "The path exists but not with this method.",
    "conflict": "The request conflicts with the current state.",
    "username_taken": "Another account has this username (case does not matter).",
    "email_taken": "Another account has this e-mail address.",
    "already_verified": "The e-mail address is already verified.",
    "cannot_modify_self": "Admins cannot change or delete their own account through the admin API.",
    "payload_too_large": "The body is too large.",
    "unsupported_media_type": "The content type is not supported.",
    "malformed_multipart": "The multipart body is not valid: boundary, part headers or closing boundary.",
    "image_too_large": "The image has more pixels (width × height) than the server accepts.",
    "invalid_image": "The image is damaged or truncated and cannot be decoded.",
    "upload_interrupted": "The client stopped sending the upload before its end.",
    "media_not_found": "No media file under this key.",
    "media_not_available": "An upload id is unknown, someone else's, or already in use.",
    "post_needs_content": "A post without images cannot have its text emptied.",
    "expiry_in_past": "An API key's `expires_at` must be in the future.",
    "idempotency_key_reused": "The Idempotency-Key was used before for another method, path or body.",
    "idempotency_in_progress": "A request with this Idempotency-Key is still running; retry shortly.",
    "rate_limited": "Too many requests; wait for `Retry-After` seconds.",
    "internal_error": "An unexpected error; quote the request id when reporting it.",
    "service_unavailable": "A dependency is down; try again shortly.",
    "storage_full": "The media storage is full; nothing was stored. Retry after `Retry-After` seconds.",
}

router = APIRouter(include_in_schema=False)


@router.get("/problems/{code}", response_class=HTMLResponse)
async def problem_page(code: str) -> HTMLResponse:
    description = PROBLEM_CODES.get(code)
    if description is None:
        raise NotFound("No such problem type.")
    title = html.escape(code)
    return HTMLResponse(
        f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{html.escape(description)}</p>"
    )
