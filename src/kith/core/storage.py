"""Where media files are kept, as the rest of Kith sees it: a small interface.

The process's resources hold one `MediaStorage`; the media domain provides the local-disk
implementation (`kith.media.storage.LocalMediaStorage`) and the composition root
(`kith.main`, `kith.cli`) hands it in, so shared code never imports a domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class StoredFile:
    """A stored file, ready to be served from the local filesystem."""

    path: Path
    size: int


class MediaStorage(Protocol):
    """What the media domain needs from a place that keeps files."""

    async def save(self, key: str, source: Path) -> None:
        """Store a copy of `source` under `key`. Readers never see a half-written file."""

    async def open(self, key: str) -> StoredFile | None:
        """The file stored under `key`, or None when there is none or the key is malformed."""

    async def delete(self, key: str) -> None:
        """Remove the file under `key`; a missing file is not an error."""

    async def exists(self, key: str) -> bool:
        """Whether a file is stored under `key`."""

    async def written_between(self, start: datetime, end: datetime) -> list[str]:
        """Keys of the files last written in [start, end), for the orphan sweep. Leftovers
        of interrupted saves from before `end` are removed on the way."""
