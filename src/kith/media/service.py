"""Media rules that other domains use: attaching uploads to posts and listing them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.errors import Unprocessable
from kith.core.resources import Resources
from kith.db.models import Media, Post, User
from kith.media import repository


async def attach_to_post(
    session: AsyncSession, resources: Resources, owner: User, post: Post, media_ids: Sequence[str]
) -> list[Media]:
    """Attach the caller's own, not yet attached uploads to `post`, in the given order.

    Any id that is not such an upload makes the whole request invalid (422 on
    `body.media_ids`), so a post never silently loses an image.
    """
    if len(set(media_ids)) != len(media_ids):
        raise _invalid_media("media_ids must not repeat an id")
    found = {media.id: media for media in await repository.owned_unattached(session, owner.id, media_ids)}
    missing = [media_id for media_id in media_ids if media_id not in found]
    if missing:
        raise _invalid_media("unknown, already attached, or not your upload: " + ", ".join(missing))
    now = resources.clock.now()
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


async def release_post_media(session: AsyncSession, post_id: str) -> None:
    """Detach a deleted post's media; the periodic clean-up removes them and their files."""
    await repository.release_post(session, post_id)


def _invalid_media(message: str) -> Unprocessable:
    error = Unprocessable("The request is not valid.")
    error.errors = [{"field": "body.media_ids", "message": message, "type": "value_error"}]
    return error
