"""Mastodon's media uploads, answered by Kith's (docs/mastodon.md#statuses).

The same path as `POST /api/kith/v1/media`: the file streams to a scratch file with its size
counted, the image is checked and re-encoded (no metadata kept), and the row is written in a
short transaction of its own, so a slow upload holds no database connection. The upload is
the caller's until a status attaches it, and is removed if none does within 24 hours.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from kith.auth.dependencies import (
    OUTSIDE_SCOPES,
    InsufficientScope,
    RequestCredentials,
    authenticate,
    require_scope,
)
from kith.db.models import User
from kith.http.deps import AppSettings, MediaFiles, Now, Transaction
from kith.http.ratelimit import rate_limit
from kith.http.session import DbSession
from kith.mastodon.ids import from_mastodon_id
from kith.mastodon.statuses import MediaAttachment, media_attachment
from kith.media import service as media
from kith.media.schemas import MediaView
from kith.media.storage import scratch_dir
from kith.media.upload import receive_file

router = APIRouter(include_in_schema=False)

# Parts Mastodon apps send beside `file`: Kith keeps no description, focus or thumbnail.
IGNORED_PARTS = frozenset({"description", "focus", "thumbnail"})


async def media_writer(request: Request, transaction: Transaction, credentials: RequestCredentials) -> User:
    """A caller with `write:media`, checked in a short read-only transaction of its own (as
    Kith's uploads are: the body may take long to arrive)."""
    async with transaction(write=False) as session:
        principal = await authenticate(request, session, credentials, app_tokens=True)
    if not principal.allows("write:media"):
        raise InsufficientScope(OUTSIDE_SCOPES)
    return principal.user


media_writer.required_scope = ("write:media",)  # type: ignore[attr-defined]  # for the route inventory
MediaWriter = Annotated[User, Depends(media_writer)]


@router.post("/api/v2/media", dependencies=[rate_limit("media_uploads")])
@router.post("/api/v1/media", dependencies=[rate_limit("media_uploads")])  # Mastodon's older path
async def upload(
    request: Request,
    user: MediaWriter,
    files: MediaFiles,
    settings: AppSettings,
    transaction: Transaction,
    now: Now,
) -> MediaAttachment:
    """Upload an image (`file`, JPEG, PNG, GIF or WebP), processed at once: 200 with its
    MediaAttachment, its `url` ready."""
    async with receive_file(
        request, scratch_dir(settings), settings.media_max_bytes, ignored=IGNORED_PARTS
    ) as received:
        stored = await media.store_image(files, settings, received.path)
    async with transaction() as session:
        row = await media.record_upload(session, files, user, stored, now=now)
        view = MediaView.model_validate(row)
    return media_attachment(view)


@router.get("/api/v1/media/{media_id}")
async def get_media(
    media_id: str, user: Annotated[User, Depends(require_scope("write:media"))], session: DbSession
) -> MediaAttachment:
    """One of the caller's uploads (404 for anyone else's)."""
    kith_id = from_mastodon_id(media_id)
    row = await media.own_upload(session, user, kith_id) if kith_id else None
    if row is None:
        raise media.MediaNotFound()
    return media_attachment(MediaView.model_validate(row))
