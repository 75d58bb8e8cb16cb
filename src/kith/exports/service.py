"""Rules of exports: one a day, owner only, links that work once (docs/export.md)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from kith.auth import service as auth
from kith.core.config import Settings
from kith.core.errors import Conflict, DomainError, NotFound
from kith.core.jobs import enqueue
from kith.core.pagination import CursorParams
from kith.core.security import hash_token, new_token
from kith.core.urls import API_PREFIX
from kith.db.models import Export, ExportStatus, User
from kith.exports import jobs, repository
from kith.exports.archive import announce_progress

DOWNLOAD_PATH = "/export-downloads/"


class ExportNotFound(NotFound):
    code = "export_not_found"
    default_detail = "No such export."
    description = "No export with this id belongs to the caller."


class ExportTooSoon(DomainError):
    status = 429
    code = "export_too_soon"
    default_detail = "An export was made less than a day ago; try again later."
    description = (
        "One export per account per day (failed ones do not count): retry after `Retry-After` seconds."
    )


class ExportNotReady(Conflict):
    code = "export_not_ready"
    default_detail = "The archive is not ready."
    description = "The export is still being built, or it failed: there is no archive to download."


class ExportExpired(DomainError):
    status = 410
    code = "export_expired"
    default_detail = "The archive has expired and was deleted; ask for a new export."
    description = "The export's archive is past its expiry and deleted."


class InvalidDownloadLink(DomainError):
    status = 410
    code = "download_link_invalid"
    default_detail = "This download link was used already, has expired, or is unknown; ask for a new one."
    description = "A download link works once and for a short while; its export's owner can ask for another."


async def request_export(session: AsyncSession, user: User, settings: Settings, *, now: datetime) -> Export:
    """Queue an export of the user's data; built by a job after the commit.

    429 `export_too_soon` (with `Retry-After`) when the user's last export that did not
    fail was made within `KITH_EXPORT_COOLDOWN_HOURS`.
    """
    cooldown = timedelta(hours=settings.export_cooldown_hours)
    await repository.lock_account(session, user.id)
    recent = await repository.latest_counting(session, user.id, now - cooldown)
    if recent is not None:
        wait = math.ceil((recent.created_at + cooldown - now).total_seconds())
        raise ExportTooSoon(headers={"Retry-After": str(max(wait, 1))})
    export = create_export(session, user, now=now)
    await session.flush()
    enqueue(session, jobs.build_export, export_id=export.id)
    announce_progress(session, export)
    return export


def create_export(session: AsyncSession, user: User, *, now: datetime) -> Export:
    """A queued export row, without the daily limit or a job."""
    export = Export(user_id=user.id, status=ExportStatus.queued, progress=0, created_at=now)
    session.add(export)
    return export


async def export_for_operator(
    session: AsyncSession, identifier: str, *, now: datetime
) -> tuple[Export, User]:
    """For `kith export`: a queued export of the account named by username, e-mail address or
    id, which the command builds itself. An administrator's export is not held to the daily
    limit, and it counts as the user's export of the day. 404 `user_not_found`."""
    user = await auth.find_by_login(session, identifier) or await auth.get_user(session, identifier)
    if user is None:
        raise auth.UserNotFound()
    export = create_export(session, user, now=now)
    await session.flush()
    announce_progress(session, export)
    return export, user


async def list_exports(
    session: AsyncSession, user: User, params: CursorParams
) -> tuple[list[Export], str | None]:
    """The user's exports, newest first."""
    return await params.fetch(session, repository.of_user(user.id), Export.id)


async def owned_export(session: AsyncSession, user: User, export_id: str) -> Export:
    """The user's export, else 404 (another user's export is 404 too)."""
    export = await repository.owned(session, user.id, export_id)
    if export is None:
        raise ExportNotFound()
    return export


def check_downloadable(export: Export, now: datetime) -> None:
    """409 `export_not_ready` while it is built or when it failed; 410 `export_expired`."""
    if export.status == ExportStatus.expired or (
        export.status == ExportStatus.ready and export.expires_at is not None and export.expires_at <= now
    ):
        raise ExportExpired()
    if export.status != ExportStatus.ready:
        raise ExportNotReady()


def issue_link(export: Export, settings: Settings, *, now: datetime) -> tuple[str, datetime]:
    """A new single-use download link for a downloadable export; any earlier one stops working.
    Returns the link's URL and its expiry (`KITH_EXPORT_LINK_TTL_SECONDS`, never past the
    archive's own)."""
    check_downloadable(export, now)
    assert export.expires_at is not None
    token = new_token()
    export.link_hash = hash_token(token)
    export.link_expires_at = min(now + timedelta(seconds=settings.export_link_ttl_seconds), export.expires_at)
    return f"{settings.public_url}{API_PREFIX}{DOWNLOAD_PATH}{token}", export.link_expires_at


async def redeem_link(session: AsyncSession, token: str, *, now: datetime) -> Export:
    """The export a download link opens, spending the link: 410 `download_link_invalid` for
    a link used before, expired, replaced by a newer one, or of an expired archive."""
    export = await repository.redeem_link(session, hash_token(token), now)
    if export is None:
        raise InvalidDownloadLink()
    return export


async def owner_name(session: AsyncSession, export: Export) -> str:
    """The username of the export's owner (for the archive's file name)."""
    user = await session.get(User, export.user_id)
    return user.username if user is not None else "account"
