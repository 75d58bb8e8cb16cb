"""Routes of the media domain: uploading images and serving them (docs/api.md#posts-media-likes-comments).

Uploads are part of Kith's API (`router`, under its prefix); the files are served at a plain
public path of their own, `/media/{key}` (`files`, included as it is), where any client,
cache or `<img>` finds them whatever API it speaks.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import FileResponse

from kith.core.urls import MEDIA_PATH, media_url
from kith.http.caching import if_none_match_hits
from kith.http.deps import AppSettings, MediaFiles, Now, Transaction
from kith.http.errors import problem_responses
from kith.http.idempotency import Claim, DeferredAttempt, Recorded, record_answer, request_hash
from kith.http.ratelimit import rate_limit
from kith.media import service
from kith.media.dependencies import Uploader
from kith.media.schemas import MediaView
from kith.media.storage import content_type_of, is_valid_key, scratch_dir
from kith.media.upload import receive_file

router = APIRouter(tags=["media"])
files = APIRouter(tags=["media"])

# Stored files never change under their key, so every cache may keep them for good.
FILE_CACHE_CONTROL = "public, max-age=31536000, immutable"

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    # Other parts are refused (422), like unknown fields of a JSON body.
                    "additionalProperties": False,
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A JPEG, PNG, GIF or WebP image.",
                        }
                    },
                },
                "encoding": {"file": {"contentType": "image/jpeg, image/png, image/gif, image/webp"}},
            }
        },
    }
}
_FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The image file.",
        "content": {
            content_type: {"schema": {"type": "string", "format": "binary"}}
            for content_type in ("image/jpeg", "image/png", "image/gif", "image/webp")
        },
    },
    304: {"description": "Not modified: the `If-None-Match` tag matches."},
}


@router.post(
    "/media",
    operation_id="uploadMedia",
    status_code=status.HTTP_201_CREATED,
    response_model=MediaView,
    responses=problem_responses(401, 403, 413, 415, 422, 429, 503),
    openapi_extra=_UPLOAD_BODY,
    dependencies=[rate_limit("media_uploads")],
)
async def upload_media(
    attempt: DeferredAttempt,
    request: Request,
    response: Response,
    user: Uploader,
    files: MediaFiles,
    settings: AppSettings,
    transaction: Transaction,
    now: Now,
) -> object:
    """Upload an image, as `multipart/form-data` with one part named `file`.

    JPEG, PNG, GIF and WebP are accepted, judged by the file's content, never by its name
    or declared type (anything else is 415 `unsupported_media_type`). The file may be
    up to `KITH_MEDIA_MAX_BYTES` (10 MiB by default): its bytes are counted as they
    arrive and 413 `payload_too_large` comes as soon as the count passes the cap, before
    the rest of the body is read. Images above `KITH_MEDIA_MAX_PIXELS` (33 megapixels)
    are refused with 422 `image_too_large`, read from the header before any pixel is
    decoded; a damaged image is 422 `invalid_image`. When the server's storage is full the
    answer is 503 `storage_full` with `Retry-After`, and nothing of the upload is kept.

    The image is re-encoded, which drops EXIF (GPS included) and all other metadata
    after applying its EXIF orientation (a colour profile is kept only if it parses, as
    rewritten by LittleCMS); JPEG at quality 85; animated GIF, WebP and
    PNG keep their first frame only. It is stored under a random name and served at
    `url`, to anyone who has the URL. Attach it to a post with `media_ids` or make it
    your avatar with `PATCH /users/me`; uploads still unattached after 24 hours are
    removed. An API key needs the `write` scope.

    With `Idempotency-Key`, a retry that sends the same file (byte for byte) gets the first
    answer again and stores nothing; another file under the same key is 422.
    """
    async with receive_file(request, scratch_dir(settings), settings.media_max_bytes) as upload:
        fingerprint = request_hash(request.method, request.url.path, upload.sha256.encode())
        if isinstance(attempt, Recorded):
            return attempt.answer(fingerprint)
        stored = await service.store_image(files, settings, upload.path)
    # The row's own short transaction, opened only now that the file is stored (see `uploader`).
    async with transaction() as session:
        media = await service.record_upload(session, files, user, stored, now=now)
        response.headers["Location"] = media_url(media.storage_key) or ""
        if isinstance(attempt, Claim):
            return await record_answer(request, response, session, attempt, media, fingerprint)
    return media


@files.get(
    MEDIA_PATH + "{key}",
    operation_id="getMediaFile",
    response_class=FileResponse,
    responses={**_FILE_RESPONSE, **problem_responses(404)},
)
async def get_media_file(key: str, request: Request, files: MediaFiles) -> Response:
    """The image stored under `key`: the last segment of an upload's `url`. No credentials needed.

    Served with `Cache-Control: public, max-age=31536000, immutable` (a key's content
    never changes), `X-Content-Type-Options: nosniff` and an `ETag`. 404 for an unknown
    or malformed key.
    """
    stored = await files.open(key) if is_valid_key(key) else None
    if stored is None:
        raise service.MediaNotFound()
    headers = {
        "Cache-Control": FILE_CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",
        "ETag": f'"{key}"',
    }
    if if_none_match_hits(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return FileResponse(stored.path, media_type=content_type_of(key), headers=headers)
