"""Building an export's archive: a zip written to disk as it is read, never held in memory.

Each section (posts, comments, likes, friends, blocks, notifications) is read in pages of
`BATCH` through the same service function and response schema as the API route that lists
it, so the archive's JSON cannot drift from what the API answers; each page is written into
the zip entry at once and dropped. Media files are copied in chunks of `CHUNK` bytes. The
zip is written to `<id>.zip.part` and renamed into place when complete; the database sees
the export `ready` only after that. Memory therefore stays bounded by one page of rows and
one chunk, whatever the account holds (docs/export.md has the measured figures).

File work runs in a thread (`anyio.to_thread`), one hop per page or file, so the event loop
never waits on the disk. Each page is read in its own short read-only unit of work, and the
progress is written in short write units: no lock is held while the archive is written.
"""

from __future__ import annotations

import contextlib
import html
import os
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING

import anyio
import orjson
import structlog
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from kith import __version__
from kith.auth.schemas import PrivateUser
from kith.core.config import Settings
from kith.core.pagination import CursorParams
from kith.core.realtime import publish_after_commit
from kith.db.models import Export, ExportStatus, User
from kith.exports import repository
from kith.exports.schemas import ExportView
from kith.media import service as media
from kith.media.schemas import MediaView
from kith.notifications import service as notifications
from kith.posts import service as posts
from kith.runtime.transaction import unit_of_work
from kith.social import service as social
from kith.social.schemas import BlockView, FriendView

if TYPE_CHECKING:
    from kith.runtime.resources import Resources

log = structlog.get_logger("kith.exports")

# Rows read, serialised and written per step, and bytes copied per read of a media file.
BATCH = 500
CHUNK = 1024 * 1024
# At most one progress write (and live event) per this many seconds, besides the last.
PROGRESS_EVERY_SECONDS = 0.5
FORMAT = "kith-export"
FORMAT_VERSION = 1

# A page of a section: the items and the cursor of the next page (None on the last).
Page = tuple[Sequence[BaseModel], str | None]
PageReader = Callable[[AsyncSession, User, CursorParams], Awaitable[Page]]
# Called with (items done, items in all) as the export advances (the CLI's progress bar).
ProgressCallback = Callable[[int, int], None]


class ArchiveTooLarge(Exception):
    """The archive passed `KITH_EXPORT_MAX_BYTES`."""


def archive_path(settings: Settings, export_id: str) -> Path:
    """Where the finished archive of `export_id` is kept (the id is checked by the caller's
    lookup: it comes from the database, never from a client)."""
    return settings.export_root / f"{export_id}.zip"


def partial_path(settings: Settings, export_id: str) -> Path:
    """Where the archive of `export_id` is written until it is complete."""
    return settings.export_root / f"{export_id}.zip.part"


def delete_archive_files(settings: Settings, export_id: str) -> None:
    """Remove the archive of `export_id`, finished or not; missing files are no error."""
    for path in (archive_path(settings, export_id), partial_path(settings, export_id)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


async def delete_archives(settings: Settings, export_ids: Sequence[str]) -> None:
    for export_id in export_ids:
        await anyio.to_thread.run_sync(delete_archive_files, settings, export_id)


def announce_progress(session: AsyncSession, export: Export) -> None:
    """Tell the owner's live streams how the export stands, once `session` commits."""
    publish_after_commit(
        session, export.user_id, {"event": "export", "data": ExportView.of(export).model_dump(mode="json")}
    )


class ArchiveWriter:
    """A zip written entry by entry to a file: the entry being written is the only one open,
    and nothing of earlier entries stays in memory. Every call blocks: run it in a thread."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self._file = path.open("wb")
        self._zip = zipfile.ZipFile(self._file, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self._entry: IO[bytes] | None = None

    def begin(self, name: str) -> None:
        """Open the entry `name` (deflated) for `write`."""
        self._entry = self._zip.open(name, "w", force_zip64=True)

    def write(self, data: bytes) -> None:
        assert self._entry is not None
        self._entry.write(data)
        self._check()

    def end(self) -> None:
        assert self._entry is not None
        self._entry.close()
        self._entry = None
        self._check()

    def add_file(self, name: str, source: Path) -> None:
        """Copy `source` into the entry `name`, stored as it is (images are compressed already)."""
        info = zipfile.ZipInfo(name, date_time=time.gmtime(source.stat().st_mtime)[:6])
        info.compress_type = zipfile.ZIP_STORED
        with source.open("rb") as reader, self._zip.open(info, "w", force_zip64=True) as entry:
            while chunk := reader.read(CHUNK):
                entry.write(chunk)
                self._check()
        self._check()

    def close(self) -> int:
        """Write the central directory and close the file; returns the archive's size."""
        self._zip.close()
        self._file.close()
        size = self.path.stat().st_size
        if size > self.max_bytes:
            raise ArchiveTooLarge()
        return size

    def abort(self) -> None:
        """Close and remove the file, after a failure."""
        with contextlib.suppress(Exception):
            if self._entry is not None:
                self._entry.close()
        with contextlib.suppress(Exception):
            self._zip.close()
        self._file.close()
        self.path.unlink(missing_ok=True)

    def _check(self) -> None:
        if self._file.tell() > self.max_bytes:
            raise ArchiveTooLarge()


@dataclass
class _Progress:
    """Counts items written, and now and then writes the percentage and tells the owner."""

    resources: Resources
    export_id: str
    total: int
    callback: ProgressCallback | None
    done: int = 0
    percent: int = 0
    written_at: float = field(default_factory=time.monotonic)

    async def advance(self, count: int) -> None:
        self.done += count
        if self.callback is not None:
            self.callback(self.done, max(self.total, self.done))
        # 100 only once the archive is complete and the export `ready`.
        percent = min(99, self.done * 100 // max(self.total, 1))
        now = time.monotonic()
        if percent > self.percent and now - self.written_at >= PROGRESS_EVERY_SECONDS:
            self.percent, self.written_at = percent, now
            async with unit_of_work(self.resources) as session:
                export = await repository.get(session, self.export_id)
                if export is not None and export.status == ExportStatus.running:
                    export.progress = percent
                    announce_progress(session, export)


async def _friends(session: AsyncSession, user: User, params: CursorParams) -> Page:
    rows, next_cursor = await social.list_friends(session, user, user, params)
    return [FriendView.of(friend, since) for friend, since in rows], next_cursor


async def _blocks(session: AsyncSession, user: User, params: CursorParams) -> Page:
    rows, next_cursor = await social.list_blocks(session, user, params)
    return [BlockView.of(blocked, since) for blocked, since in rows], next_cursor


async def _posts(session: AsyncSession, user: User, params: CursorParams) -> Page:
    return await posts.posts_of_user(session, user, user.id, params)


async def _notifications(session: AsyncSession, user: User, params: CursorParams) -> Page:
    return await notifications.list_notifications(session, user, params, unread_only=False)


async def _uploads(session: AsyncSession, user: User, params: CursorParams) -> Page:
    found, next_cursor = await media.uploads_of(session, user.id, params)
    return [MediaView.model_validate(item) for item in found], next_cursor


# Each section's file and the reader of its pages: the service function behind the API route
# named beside it, with that route's response schema.
SECTIONS: tuple[tuple[str, PageReader], ...] = (
    ("posts", _posts),  # GET /users/{id}/posts
    ("comments", posts.comments_by),  # items of GET /posts/{id}/comments
    ("likes", posts.likes_by),  # the caller's rows of GET /posts/{id}/likes
    ("friends", _friends),  # GET /users/{id}/friends
    ("blocks", _blocks),  # GET /blocks
    ("notifications", _notifications),  # GET /notifications
    ("media", _uploads),  # the caller's uploads, as POST /media answered them
)


def _json(item: BaseModel) -> bytes:
    return item.model_dump_json(by_alias=True).encode()


async def _in_thread(func: Callable[..., object], *args: object) -> None:
    await anyio.to_thread.run_sync(partial(func, *args))


async def _pages(
    resources: Resources, user_id: str, read_page: PageReader
) -> AsyncIterator[Sequence[BaseModel]]:
    """Every page of a section, each read in its own short read-only unit of work."""
    cursor = None
    while True:
        async with unit_of_work(resources, write=False) as session:
            user = await session.get(User, user_id)
            if user is None:
                raise LookupError("the account is gone")
            items, cursor = await read_page(session, user, CursorParams.from_cursor(BATCH, cursor))
        if items:
            yield items
        if cursor is None:
            return


async def _write_section(
    resources: Resources,
    writer: ArchiveWriter,
    user_id: str,
    name: str,
    read_page: PageReader,
    progress: _Progress,
) -> int:
    """Write the section `name` as a JSON array, page by page; returns how many items."""
    await _in_thread(writer.begin, f"{name}.json")
    await _in_thread(writer.write, b"[")
    count = 0
    async for items in _pages(resources, user_id, read_page):
        lead = b"\n" if count == 0 else b",\n"
        await _in_thread(writer.write, lead + b",\n".join(_json(item) for item in items))
        count += len(items)
        if name != "media":  # an upload counts once its file is copied
            await progress.advance(len(items))
    await _in_thread(writer.write, b"\n]\n" if count else b"]\n")
    await _in_thread(writer.end)
    return count


async def _copy_media(resources: Resources, writer: ArchiveWriter, user_id: str, progress: _Progress) -> int:
    """Copy each upload's file into `media/<key>`, as `GET /media/{key}` serves it; returns
    how many were missing from storage (removed meanwhile), which the archive leaves out."""
    missing = 0
    async for items in _pages(resources, user_id, _uploads):
        for item in items:
            assert isinstance(item, MediaView)
            stored = await resources.media.open(item.storage_key)
            if stored is None:
                missing += 1
            else:
                await _in_thread(writer.add_file, f"media/{item.storage_key}", stored.path)
            await progress.advance(1)
    return missing


async def _write_index(
    resources: Resources,
    writer: ArchiveWriter,
    user_id: str,
    profile: PrivateUser,
    counts: dict[str, int],
    generated: str,
) -> None:
    """A small page to open the archive with in a browser: what it holds, with links. Its
    list of images is written page by page, like the sections."""
    name = html.escape(profile.display_name)
    rows = "".join(
        f'<tr><td><a href="{section}.json">{section}.json</a></td><td>{count}</td></tr>\n'
        for section, count in counts.items()
    )
    head = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Kith export of {name}</title></head>\n<body>\n"
        f"<h1>Kith export of {name} (@{html.escape(profile.username)})</h1>\n"
        f"<p>Made {html.escape(generated)}. Every file is JSON in the shapes of Kith's API "
        "(<code>/api/kith/v1</code>); <code>manifest.json</code> describes the archive.</p>\n"
        '<p><a href="profile.json">profile.json</a>: your account as '
        "<code>GET /users/me</code> shows it.</p>\n"
        f"<table><thead><tr><th>file</th><th>items</th></tr></thead><tbody>\n{rows}</tbody></table>\n"
        f"<h2>Images ({counts.get('media', 0)})</h2>\n<ul>\n"
    )
    await _in_thread(writer.begin, "index.html")
    await _in_thread(writer.write, head.encode())
    async for items in _pages(resources, user_id, _uploads):
        lines = []
        for item in items:
            assert isinstance(item, MediaView)
            key = html.escape(item.storage_key)
            lines.append(
                f'<li><a href="media/{key}">{key}</a> ({html.escape(item.content_type)}, '
                f"{item.width}×{item.height}, {item.size} bytes)</li>\n"
            )
        await _in_thread(writer.write, "".join(lines).encode())
    await _in_thread(writer.write, b"</ul>\n</body></html>\n")
    await _in_thread(writer.end)


async def _start(resources: Resources, export_id: str) -> tuple[str, int] | None:
    """Mark the export running; returns its owner and the items to write, or None when
    there is nothing to build (gone, or already finished)."""
    now = resources.clock.now()
    async with unit_of_work(resources) as session:
        export = await repository.get(session, export_id)
        if export is None or export.status not in repository.BUILDING:
            return None
        export.status, export.progress, export.started_at = ExportStatus.running, 0, now
        announce_progress(session, export)
        user_id = export.user_id
    # Counted outside the write: SQLite's write lock is held no longer than the update.
    async with unit_of_work(resources, write=False) as session:
        return user_id, await repository.item_counts(session, user_id)


async def _finish(
    resources: Resources,
    export_id: str,
    size: int,
    on_ready: Callable[[AsyncSession, Export, User], None] | None,
) -> Export | None:
    settings, now = resources.settings, resources.clock.now()
    async with unit_of_work(resources) as session:
        export = await repository.get(session, export_id)
        if export is None or export.status != ExportStatus.running:
            return None
        export.status, export.progress, export.size = ExportStatus.ready, 100, size
        export.finished_at = now
        export.expires_at = now + timedelta(hours=settings.export_ttl_hours)
        announce_progress(session, export)
        user = await session.get(User, export.user_id)
        if on_ready is not None and user is not None:
            on_ready(session, export, user)
        return export


async def _fail(resources: Resources, export_id: str, error: str) -> None:
    async with unit_of_work(resources) as session:
        export = await repository.get(session, export_id)
        if export is not None and export.status in repository.BUILDING:
            export.status, export.error, export.finished_at = (
                ExportStatus.failed,
                error,
                resources.clock.now(),
            )
            announce_progress(session, export)


async def build_archive(
    resources: Resources,
    export_id: str,
    *,
    on_ready: Callable[[AsyncSession, Export, User], None] | None = None,
    on_progress: ProgressCallback | None = None,
) -> Export | None:
    """Build the archive of a queued export and mark it `ready` (calling `on_ready` in that
    transaction), or `failed` with its `error`. Returns the ready export, else None."""
    settings = resources.settings
    started = await _start(resources, export_id)
    if started is None:
        return None
    user_id, total = started
    final = archive_path(settings, export_id)
    try:
        writer = await anyio.to_thread.run_sync(
            ArchiveWriter, partial_path(settings, export_id), settings.export_max_bytes
        )
    except OSError:
        log.exception("export_failed", export_id=export_id)
        await _fail(resources, export_id, "build_failed")
        return None
    progress = _Progress(resources, export_id, total, on_progress)
    generated = resources.clock.now()
    try:
        async with unit_of_work(resources, write=False) as session:
            user = await session.get(User, user_id)
            if user is None:
                raise LookupError("the account is gone")
            profile = PrivateUser.model_validate(user)
        await _in_thread(writer.begin, "profile.json")
        await _in_thread(writer.write, _json(profile) + b"\n")
        await _in_thread(writer.end)
        counts: dict[str, int] = {}
        for name, read_page in SECTIONS:
            counts[name] = await _write_section(resources, writer, user_id, name, read_page, progress)
        missing = await _copy_media(resources, writer, user_id, progress)
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "kith_version": __version__,
            "export_id": export_id,
            "user_id": user_id,
            "username": profile.username,
            "generated_at": _rfc3339(generated),
            "counts": counts,
            # Uploads listed in media.json whose file was gone from storage when copied.
            "media_missing": missing,
        }
        await _in_thread(writer.begin, "manifest.json")
        await _in_thread(writer.write, orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
        await _in_thread(writer.end)
        await _write_index(resources, writer, user_id, profile, counts, _rfc3339(generated))
        size = await anyio.to_thread.run_sync(writer.close)
        await anyio.to_thread.run_sync(os.replace, writer.path, final)
    except ArchiveTooLarge:
        await anyio.to_thread.run_sync(writer.abort)
        log.warning("export_too_large", export_id=export_id, max_bytes=settings.export_max_bytes)
        await _fail(resources, export_id, "too_large")
        return None
    except Exception:
        await anyio.to_thread.run_sync(writer.abort)
        log.exception("export_failed", export_id=export_id)
        await _fail(resources, export_id, "build_failed")
        return None
    ready = await _finish(resources, export_id, size, on_ready)
    if ready is None:
        # Deleted meanwhile (with its account): its archive goes too.
        await anyio.to_thread.run_sync(delete_archive_files, settings, export_id)
        return None
    log.info("export_ready", export_id=export_id, size=size, items=progress.done)
    return ready


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
