"""Where media files live: a small interface and its local-disk implementation.

A storage key is a random name plus an extension (`3f9c…e1.jpg`). Keys are made
here, from 128 random bits, and every key that arrives from outside is checked
against `KEY_PATTERN` before it is used, so `../`, encoded dots, slashes, absolute
paths or anything else unexpected never reaches the filesystem.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kith.core.errors import ServiceUnavailable
from kith.core.storage import StoredFile

if TYPE_CHECKING:
    from kith.core.config import Settings

# Content type of each stored extension; the extension says how the file was encoded.
CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
}
KEY_BYTES = 16  # 128 bits
KEY_PATTERN = re.compile(r"[0-9a-f]{32}\.(?:jpg|png|gif|webp)", re.ASCII)
# Prefix of the files a save writes before renaming them into place.
_TEMP_PREFIX = ".tmp-"
# Uploads in progress and their re-encoded copies wait here; no key can name it.
SCRATCH_DIR = ".incoming"


# Seconds a client is asked to wait after 503 `storage_full`: room is made by an operator
# or by the clean-up of stale uploads, not within a second.
STORAGE_FULL_RETRY_AFTER = 60


class InvalidKey(ValueError):
    """A storage key that `KEY_PATTERN` refuses."""


def is_disk_full(exc: OSError) -> bool:
    """Whether `exc` says the filesystem (or the process's quota on it) has no room left."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


class StorageFull(ServiceUnavailable):
    code = "storage_full"
    default_detail = "The server has no room to store the upload right now; try again later."
    description = "The media storage is full; nothing was stored. Retry after `Retry-After` seconds."


def storage_full() -> ServiceUnavailable:
    """503 `storage_full`: the media directory has no room for the upload; nothing was kept."""
    return StorageFull(
        # The rest of a body that was still streaming is never read.
        headers={"Retry-After": str(STORAGE_FULL_RETRY_AFTER), "Connection": "close"},
    )


def new_key(extension: str) -> str:
    """A fresh random key for a file encoded as `extension` (`jpg`, `png`, `gif`, `webp`)."""
    if extension not in CONTENT_TYPES:
        raise InvalidKey(f"unknown extension {extension!r}")
    # Lower-case hex: safe on case-insensitive filesystems and in any URL.
    return f"{secrets.token_hex(KEY_BYTES)}.{extension}"


def scratch_dir(settings: Settings) -> Path:
    """Where uploads are staged while they stream in and are re-encoded."""
    return settings.media_root / SCRATCH_DIR


def is_valid_key(key: str) -> bool:
    return KEY_PATTERN.fullmatch(key) is not None


def content_type_of(key: str) -> str:
    """The content type of the file stored under `key` (which must be valid)."""
    if not is_valid_key(key):
        raise InvalidKey("malformed storage key")
    return CONTENT_TYPES[key.rsplit(".", 1)[1]]


class LocalMediaStorage:
    """Files in a directory, fanned out into 256 sub-directories by the key's first two characters."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, key: str) -> Path:
        """The path of `key`'s file. Raises `InvalidKey` for any key that is not one of ours."""
        if not is_valid_key(key):
            raise InvalidKey("malformed storage key")
        return self.root / key[:2] / key

    async def save(self, key: str, source: Path) -> None:
        target = self.path_of(key)
        await asyncio.to_thread(_copy_then_rename, source, target)

    async def open(self, key: str) -> StoredFile | None:
        try:
            path = self.path_of(key)
        except InvalidKey:
            return None
        try:
            stat = await asyncio.to_thread(path.stat)
        except OSError:
            return None
        return StoredFile(path=path, size=stat.st_size)

    async def delete(self, key: str) -> None:
        path = self.path_of(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def exists(self, key: str) -> bool:
        return await self.open(key) is not None

    async def written_between(self, start: datetime, end: datetime) -> list[str]:
        return await asyncio.to_thread(self._written_between, start.timestamp(), end.timestamp())

    def _written_between(self, start: float, end: float) -> list[str]:
        keys: list[str] = []
        if not self.root.is_dir():
            return keys
        for shard in os.scandir(self.root):
            if not (shard.is_dir(follow_symlinks=False) and re.fullmatch(r"[0-9a-f]{2}", shard.name)):
                continue
            for entry in os.scandir(shard.path):
                try:
                    modified = entry.stat(follow_symlinks=False).st_mtime
                except OSError:
                    continue
                if modified >= end:
                    continue
                if is_valid_key(entry.name):
                    if modified >= start:
                        keys.append(entry.name)
                elif entry.name.startswith(_TEMP_PREFIX):
                    # A save interrupted by a crash: never visible under a key, safe to drop.
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
        return keys


def _copy_then_rename(source: Path, target: Path) -> None:
    """Write `source`'s bytes to a temporary file beside `target`, fsync, then rename.

    `os.replace` is atomic within a directory, so `target` either does not exist or is
    complete; syncing the directory makes the rename itself survive a power cut.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f"{_TEMP_PREFIX}{secrets.token_hex(8)}-{time.time_ns()}"
    try:
        with source.open("rb") as reader, temporary.open("xb") as writer:
            while chunk := reader.read(1024 * 1024):
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:  # Some platforms cannot open a directory; the rename is still atomic.
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
