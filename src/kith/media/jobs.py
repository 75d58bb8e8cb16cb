"""Background work of the media domain: removing files and stale uploads."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

import anyio

from kith.core.config import Settings
from kith.core.jobs import job
from kith.media import repository
from kith.media.storage import scratch_dir
from kith.runtime.periodic import periodic
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work

CLEANUP_BATCH = 500
# How far back the orphan sweep looks past the unattached-upload age: a file stored for
# a row that never committed (a crash between the two) is found within this window.
ORPHAN_WINDOW = timedelta(days=1)


def _cleanup_interval(settings: Settings) -> float:
    return settings.media_cleanup_interval_seconds


@job
async def delete_stored_files(resources: Resources, *, keys: list[str]) -> None:
    """Delete the files of media rows that are gone (for example with a deleted account)."""
    for key in keys:
        await resources.media.delete(key)


@periodic(_cleanup_interval)
async def remove_expired_uploads(resources: Resources) -> int:
    """Remove uploads left unattached for `KITH_MEDIA_UNATTACHED_TTL_HOURS`, rows and files.

    That covers uploads never attached to a post or an avatar, the images of deleted
    posts and replaced avatars, and files that no row refers to. Each batch of rows is
    deleted in its own transaction, and the files only after it commits: a crash in
    between leaves a file without a row, which the orphan sweep removes later; never a
    row without its file. Safe to run in several processes at once. Returns how many
    files were removed.
    """
    cutoff = resources.clock.now() - timedelta(hours=resources.settings.media_unattached_ttl_hours)
    removed = 0
    while True:
        async with unit_of_work(resources) as session:
            keys = await repository.delete_unattached_before(session, cutoff, CLEANUP_BATCH)
        for key in keys:
            await resources.media.delete(key)
        removed += len(keys)
        if len(keys) < CLEANUP_BATCH:
            break
    removed += await _remove_orphan_files(resources, cutoff)
    await anyio.to_thread.run_sync(_remove_stale_scratch, scratch_dir(resources.settings), cutoff.timestamp())
    return removed


async def _remove_orphan_files(resources: Resources, cutoff: datetime) -> int:
    candidates = await resources.media.written_between(cutoff - ORPHAN_WINDOW, cutoff)
    removed = 0
    for start in range(0, len(candidates), CLEANUP_BATCH):
        batch = candidates[start : start + CLEANUP_BATCH]
        async with unit_of_work(resources, write=False) as session:
            known = await repository.known_keys(session, batch)
        for key in batch:
            if key not in known:
                await resources.media.delete(key)
                removed += 1
    return removed


def _remove_stale_scratch(directory: Path, before: float) -> None:
    """Scratch files of uploads a crash interrupted (a finished upload removes its own)."""
    if not directory.is_dir():
        return
    for entry in os.scandir(directory):
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < before:
                os.unlink(entry.path)
        except OSError:
            continue
