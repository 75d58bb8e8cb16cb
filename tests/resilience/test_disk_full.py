"""The media disk fills up: an upload that does not fit gets 503 `storage_full`, and leaves nothing.

`KITH_MEDIA_DIR` is on a 4 MiB tmpfs of the test's own, filled with a filler file until
only a chosen amount of room is left. An upload needs room three times over: the
scratch file the body streams into (U bytes), the re-encoded copy beside it (E), and the
stored file written by copy-then-rename (E again). Leaving U/2, U + E/2 or U + 3E/2 free
makes the disk run out in each of those three phases in turn (spies on the re-encoder
and on the copy say which phase failed). The client gets an RFC 9457 problem with
`Retry-After`; no media row, no scratch, encoded, temporary or stored file is left; the
invariant checker is clean. Once the filler is gone, the same upload works and becomes
an avatar (avatars are uploads: no other path writes files).
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image
from sqlalchemy import func, select

from kith.core.config import Settings
from kith.db.models import Media
from kith.main import create_app
from kith.media import images, storage
from kith.media.storage import STORAGE_FULL_RETRY_AFTER
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.conftest import IN_CI
from tests.helpers import API, assert_problem, signup
from tests.resilience.invariants import violations

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and not IN_CI,
    reason="mounting a small tmpfs needs root (required, and never skipped, with CI=true)",
)

DISK_SIZE = 4 * 1024 * 1024
SIDE = 360  # a 360 x 360 picture of noise: about 380 KiB as PNG, before and after re-encoding


def _free(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "tmpfs", str(mount_point)],
        check=True,
        capture_output=True,
    )
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False, capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(mount_point)], check=True, capture_output=True)


def leave_free(disk: Path, room: int) -> None:
    """Fill `disk` with a filler file (outside the media directory) until `room` bytes are free."""
    filler = disk / "filler"
    filler.unlink(missing_ok=True)
    with filler.open("wb") as writer:
        writer.write(b"\0" * (_free(disk) - room))  # tmpfs keeps written zeros in pages
    assert abs(_free(disk) - room) <= 2 * 4096


@pytest.fixture
async def disk_app(settings: Settings, small_disk: Path) -> AsyncIterator[FastAPI]:
    application = create_app(settings.model_copy(update={"media_dir": small_disk / "media"}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def disk_client(disk_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=disk_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def noise_png() -> bytes:
    buffer = io.BytesIO()
    Image.frombytes("RGB", (SIDE, SIDE), os.urandom(SIDE * SIDE * 3)).save(buffer, "PNG")
    return buffer.getvalue()


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if not path.is_dir()) if root.exists() else []


async def media_rows(resources: Resources) -> int:
    async with unit_of_work(resources, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(Media)) or 0)


class Spies:
    """Which phases of the upload ran, and the disk-full errors each one met."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: dict[str, int] = {"reencode": 0, "copy": 0}
        self.disk_full: dict[str, int] = {"reencode": 0, "copy": 0}
        reencode = images.reencode
        copy = storage._copy_then_rename

        def spy(name: str, original: Any) -> Any:
            def wrapper(*args: Any) -> Any:
                self.calls[name] += 1
                try:
                    return original(*args)
                except OSError as exc:
                    if storage.is_disk_full(exc):
                        self.disk_full[name] += 1
                    raise

            return wrapper

        monkeypatch.setattr(images, "reencode", spy("reencode", reencode))
        monkeypatch.setattr(storage, "_copy_then_rename", spy("copy", copy))


# The room left on the disk for each phase to fail in, from the upload's size U and the
# re-encoded size E, with half a file (about 190 KiB) of margin either side.
PHASES = {
    "streaming": lambda u, e: u // 2,
    "re-encoding": lambda u, e: u + e // 2,
    "final store": lambda u, e: u + e + e // 2,
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("phase", list(PHASES))
async def test_upload_on_a_full_disk_is_refused_cleanly_and_works_once_there_is_room(
    disk_app: FastAPI,
    disk_client: httpx.AsyncClient,
    small_disk: Path,
    tmp_path: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    phase: str,
) -> None:
    resources: Resources = disk_app.state.resources
    media_root = resources.settings.media_root
    account = await signup(disk_client, "filler")
    data = noise_png()
    source = tmp_path / "source.png"
    source.write_bytes(data)
    encoded_size = images.reencode(source, tmp_path / "encoded.png", settings.media_max_pixels).size
    spies = Spies(monkeypatch)
    files = {"file": ("noise.png", data, "image/png")}

    leave_free(small_disk, PHASES[phase](len(data), encoded_size))
    response = await disk_client.post(f"{API}/media", files=files, headers=account.headers)

    problem = assert_problem(response, 503, "storage_full")
    assert response.headers["retry-after"] == str(STORAGE_FULL_RETRY_AFTER)
    assert "errno" not in problem["detail"].lower() and "/" not in problem["detail"]
    expected = {
        "streaming": ({"reencode": 0, "copy": 0}, {"reencode": 0, "copy": 0}),
        "re-encoding": ({"reencode": 1, "copy": 0}, {"reencode": 1, "copy": 0}),
        "final store": ({"reencode": 1, "copy": 1}, {"reencode": 0, "copy": 1}),
    }[phase]
    assert (spies.calls, spies.disk_full) == expected
    assert await media_rows(resources) == 0
    assert files_under(media_root) == [], "no scratch, encoded, temporary or stored file is left"
    assert await violations(settings.database_url, media_root) == []

    # Room again: the same upload is stored, served, and can be made an avatar.
    (small_disk / "filler").unlink()
    response = await disk_client.post(f"{API}/media", files=files, headers=account.headers)
    assert response.status_code == 201, response.text
    upload = response.json()
    assert (await disk_client.get(upload["url"])).content == (tmp_path / "encoded.png").read_bytes()
    avatar = await disk_client.patch(
        f"{API}/users/me", json={"avatar_media_id": upload["id"]}, headers=account.headers
    )
    assert avatar.status_code == 200, avatar.text
    assert avatar.json()["avatar_url"] == upload["url"]
    assert await media_rows(resources) == 1
    assert [path.name for path in files_under(media_root)] == [upload["url"].rsplit("/", 1)[1]]
    assert await violations(settings.database_url, media_root) == []
