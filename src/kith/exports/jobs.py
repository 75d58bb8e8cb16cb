"""Background work of the exports: building an archive, its e-mail, and removing expired ones."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import anyio
from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.config import Settings
from kith.core.jobs import enqueue, job
from kith.core.mail import compose
from kith.db.models import Export, User
from kith.exports import repository
from kith.exports.archive import ProgressCallback, build_archive, delete_archives
from kith.runtime.outbox import send_or_keep
from kith.runtime.periodic import periodic
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work

# The files an export leaves in `KITH_EXPORT_DIR`: `<id>.zip` and, while it is built, `<id>.zip.part`.
_ARCHIVE_NAME = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.zip(?:\.part)?")
SWEEP_BATCH = 500


def _send_ready_email(session: AsyncSession, export: Export, user: User) -> None:
    assert export.expires_at is not None
    enqueue(
        session,
        send_export_ready_email,
        to=user.email,
        name=user.display_name,
        export_id=export.id,
        expires_at=export.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
    )


async def run_export(
    resources: Resources, export_id: str, *, on_progress: ProgressCallback | None = None
) -> Export | None:
    """Build a queued export and e-mail its owner when it is ready (the job, and `kith export`)."""
    return await build_archive(resources, export_id, on_ready=_send_ready_email, on_progress=on_progress)


@job
async def build_export(resources: Resources, *, export_id: str) -> None:
    """Build the archive of a queued export; a failure marks it `failed` (not retried:
    the owner may ask again at once, failed exports do not count against the daily limit)."""
    await run_export(resources, export_id)


@job
async def send_export_ready_email(
    resources: Resources, *, to: str, name: str, export_id: str, expires_at: str
) -> None:
    settings = resources.settings
    # The link opens the web client's settings, where the owner (signed in) downloads it:
    # it carries no secret, so it works for nobody else (docs/export.md).
    link = f"{settings.public_url}/settings?export={export_id}"
    body = (
        f"Hello {name},\n\n"
        "The archive of your Kith data that you asked for is ready. Sign in and download it "
        "from your settings:\n\n"
        f"{link}\n\n"
        f"It can be downloaded until {expires_at}; then it is deleted. "
        "If you did not ask for it, change your password: someone signed in as you did.\n"
    )
    await send_or_keep(resources, compose(settings, to, "Your Kith archive is ready", body))


def _cleanup_interval(settings: Settings) -> float:
    return settings.export_cleanup_interval_seconds


@periodic(_cleanup_interval)
async def remove_expired_exports(resources: Resources) -> int:
    """Delete the archives of exports past their expiry (the rows stay, `expired`), fail
    exports left queued or running by a stopped server for `KITH_EXPORT_STALE_HOURS`, and
    remove archive files that no export holds (its account was deleted while a file was
    being written). Safe to run in several processes at once. Returns how many exports
    expired or failed."""
    settings, now = resources.settings, resources.clock.now()
    async with unit_of_work(resources) as session:
        expired = await repository.expire_ready(session, now)
        stale = await repository.fail_stale(session, now - timedelta(hours=settings.export_stale_hours), now)
    await delete_archives(settings, [*expired, *stale])
    await _remove_orphan_files(resources)
    return len(expired) + len(stale)


async def _remove_orphan_files(resources: Resources) -> None:
    settings = resources.settings
    names = await anyio.to_thread.run_sync(_archive_names, settings)
    ids = sorted({match.group(1) for match in map(_ARCHIVE_NAME.fullmatch, names) if match})
    for start in range(0, len(ids), SWEEP_BATCH):
        batch = ids[start : start + SWEEP_BATCH]
        async with unit_of_work(resources, write=False) as session:
            kept = await repository.ids_with_files(session, batch)
        await delete_archives(settings, [export_id for export_id in batch if export_id not in kept])


def _archive_names(settings: Settings) -> list[str]:
    try:
        return os.listdir(settings.export_root)
    except FileNotFoundError:
        return []
