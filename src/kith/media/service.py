"""Media rules: storing uploads, attaching them to posts and avatars, listing them."""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.config import Settings
from kith.core.errors import BadRequest, NotFound, Unprocessable
from kith.core.jobs import enqueue
from kith.core.pagination import CursorParams
from kith.core.storage import MediaStorage
from kith.db.models import Media, Post, User
from kith.media import images, jobs, repository
from kith.media.storage import is_disk_full, new_key, scratch_dir, storage_full
from kith.runtime.transaction import after_commit, on_rollback


@dataclass(frozen=True)
class StoredImage:
    """A re-encoded image, stored under its key but not yet recorded in the database."""

    key: str
    content_type: str
    width: int
    height: int
    size: int


async def store_image(files: MediaStorage, settings: Settings, upload: Path) -> StoredImage:
    """Check and re-encode the uploaded file off the event loop; store the clean copy under a new key.

    415 for anything but JPEG, PNG, GIF or WebP (judged by content), 422 `image_too_large`
    above the pixel cap (read from the header, before decoding), 422 `invalid_image`
    when the pixels cannot be decoded, 503 `storage_full` when the disk has no room for
    the re-encoded copy or the stored file (neither is left behind).
    """
    scratch = anyio.Path(scratch_dir(settings))
    output = Path(scratch / f"{secrets.token_hex(16)}.encoded")
    try:
        await scratch.mkdir(parents=True, exist_ok=True)
        encoded = await images.reencode_off_loop(upload, output, settings.media_max_pixels)
        key = new_key(encoded.extension)
        await files.save(key, output)
    except OSError as exc:
        if is_disk_full(exc):
            raise storage_full() from None
        raise
    finally:
        await anyio.Path(output).unlink(missing_ok=True)
    return StoredImage(
        key=key,
        content_type=encoded.content_type,
        width=encoded.width,
        height=encoded.height,
        size=encoded.size,
    )


async def record_upload(
    session: AsyncSession, files: MediaStorage, owner: User, stored: StoredImage, *, now: datetime
) -> Media:
    """Add the row of a stored image, unattached. If the transaction rolls back, the file goes too."""
    on_rollback(session, partial(files.delete, stored.key))
    media = Media(
        owner_id=owner.id,
        storage_key=stored.key,
        content_type=stored.content_type,
        width=stored.width,
        height=stored.height,
        size=stored.size,
        created_at=now,
    )
    session.add(media)
    await session.flush()
    return media


async def own_upload(session: AsyncSession, owner: User, media_id: str) -> Media | None:
    """One of the owner's uploads, attached or not; None for anyone else's."""
    return await repository.owned(session, owner.id, media_id)


async def set_avatar(session: AsyncSession, user: User, media_id: str | None, *, now: datetime) -> None:
    """Make one of the user's own unattached uploads their avatar, or remove the avatar (`None`).

    The chosen upload counts as attached, so the clean-up keeps it; the avatar it replaces
    becomes unattached and is removed by the next clean-up. 400 `media_not_available` on
    `body.avatar_media_id` for an id that is not such an upload.
    """
    chosen: Media | None = None
    if media_id is not None:
        chosen = await repository.owned(session, user.id, media_id)
        if chosen is not None and chosen.storage_key == user.avatar_key:
            return  # already the avatar
        if chosen is None or chosen.attached_at is not None:
            raise media_not_available("body.avatar_media_id", "unknown, already attached, or not your upload")
    if user.avatar_key is not None:
        await repository.release_avatar(session, user.id, user.avatar_key)
    if chosen is None:
        user.avatar_key = None
    else:
        chosen.attached_at = now
        user.avatar_key = chosen.storage_key


async def forget_owner(session: AsyncSession, owner_id: str) -> None:
    """Before an account is deleted (its media rows go with it): delete its files after commit."""
    keys = await repository.storage_keys_of_owner(session, owner_id)
    if keys:
        enqueue(session, jobs.delete_stored_files, keys=keys)


async def attach_to_post(
    session: AsyncSession, owner: User, post: Post, media_ids: Sequence[str], *, now: datetime
) -> list[Media]:
    """Attach the caller's own, not yet attached uploads to `post`, in the given order.

    Any id that is not such an upload refuses the whole request (400 `media_not_available`
    on `body.media_ids`), so a post never silently loses an image.
    """
    if len(set(media_ids)) != len(media_ids):
        raise _invalid_media("media_ids must not repeat an id")
    found = {media.id: media for media in await repository.owned_unattached(session, owner.id, media_ids)}
    missing = [media_id for media_id in media_ids if media_id not in found]
    if missing:
        raise media_not_available(
            "body.media_ids", "unknown, already attached, or not your upload: " + ", ".join(missing)
        )
    attached = []
    for position, media_id in enumerate(media_ids):
        media = found[media_id]
        media.post_id = post.id
        media.position = position
        media.attached_at = now
        attached.append(media)
    return attached


async def media_of_posts(session: AsyncSession, post_ids: Sequence[str]) -> dict[str, list[Media]]:
    """Each post's media in order, in one query for any number of posts."""
    grouped: dict[str, list[Media]] = defaultdict(list)
    if post_ids:
        for media in await repository.of_posts(session, post_ids):
            assert media.post_id is not None
            grouped[media.post_id].append(media)
    return grouped


async def uploads_of(
    session: AsyncSession, owner_id: str, params: CursorParams
) -> tuple[list[Media], str | None]:
    """The owner's uploads (attached to posts, the avatar, and any not attached yet), oldest
    first (an account's data export)."""
    return await repository.page_of_uploads(session, owner_id, params)


async def forget_post_media(session: AsyncSession, files: MediaStorage, post_id: str) -> None:
    """Before a post is deleted: delete its media rows, and their files as soon as the
    transaction commits, so a deleted post's image answers 404 at once (docs/security.md)."""
    keys = await repository.delete_of_post(session, post_id)
    if keys:
        after_commit(session, partial(_delete_files, files, keys))


async def _delete_files(files: MediaStorage, keys: Sequence[str]) -> None:
    for key in keys:
        await files.delete(key)


class MediaNotFound(NotFound):
    code = "media_not_found"
    default_detail = "No such media file."
    description = "No media file under this key."


class MediaNotAvailable(BadRequest):
    code = "media_not_available"
    default_detail = "An upload in the request is not one of your uploads free to use."
    description = "An upload id is unknown, someone else's, or already in use."


def media_not_available(field: str, message: str) -> BadRequest:
    """An upload id that the current state rules out: unknown, someone else's, or attached.

    400 rather than 422: the request is well formed, and whether an id is usable depends
    on what is stored (docs/api.md#conventions), which no schema can say.
    """
    error = MediaNotAvailable()
    error.errors = [{"field": field, "message": message, "type": "value_error"}]
    return error


def _invalid_media(message: str) -> Unprocessable:
    error = Unprocessable("The request is not valid.")
    error.errors = [{"field": "body.media_ids", "message": message, "type": "value_error"}]
    return error
