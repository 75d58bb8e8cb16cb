"""Media storage: the key pattern that guards the filesystem, and write-then-rename."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kith.core.config import Settings
from kith.media.storage import InvalidKey, LocalMediaStorage, content_type_of, is_valid_key, new_key

HEX32 = "0123456789abcdef" * 2


def test_new_keys_are_random_valid_and_carry_128_bits() -> None:
    keys = {new_key("jpg") for _ in range(1000)}
    assert len(keys) == 1000
    for key in keys:
        assert is_valid_key(key)
        name, extension = key.split(".")
        assert extension == "jpg"
        assert len(name) * 4 >= 128
    assert content_type_of(new_key("webp")) == "image/webp"
    with pytest.raises(InvalidKey):
        new_key("svg")


@pytest.mark.parametrize("extension", ["jpg", "png", "gif", "webp"])
def test_keys_of_each_stored_extension_are_valid(extension: str) -> None:
    assert is_valid_key(f"{HEX32}.{extension}")


@pytest.mark.parametrize(
    "key",
    [
        "",
        ".",
        "..",
        "../kith.db",
        f"../{HEX32}.jpg",
        f"..%2f{HEX32}.jpg",
        f"%2e%2e/{HEX32}.jpg",
        f"{HEX32[:2]}/{HEX32}.jpg",
        f"/{HEX32}.jpg",
        "/etc/passwd",
        f"C:\\{HEX32}.jpg",
        f"{HEX32}\\..\\x.jpg",
        f"{HEX32}.jpg\n",
        f"\n{HEX32}.jpg",
        f"{HEX32}.jpg\x00.png",
        f"{HEX32}.jpg/",
        f"{HEX32}.JPG",
        f"{HEX32.upper()}.jpg",
        f"{HEX32[:-1]}.jpg",
        f"{HEX32}0.jpg",
        f"{HEX32}.jpeg",
        f"{HEX32}.svg",
        f"{HEX32}.html",
        f"{HEX32}.jpg.html",
        f"{HEX32}",
        ".jpg",
        ".incoming",
        f".tmp-{HEX32}.jpg",
        f"{HEX32[:-1]}\u0660.jpg",  # an Arabic-Indic digit: a "digit", but not ASCII
        f"{HEX32} .jpg",
    ],
)
def test_key_pattern_refuses_everything_else(key: str, tmp_path: Path) -> None:
    assert not is_valid_key(key)
    with pytest.raises(InvalidKey):
        LocalMediaStorage(tmp_path).path_of(key)
    with pytest.raises(InvalidKey):
        content_type_of(key)


def test_files_fan_out_into_shards_inside_the_root(tmp_path: Path) -> None:
    key = new_key("png")
    path = LocalMediaStorage(tmp_path).path_of(key)
    assert path == tmp_path / key[:2] / key
    assert path.resolve().is_relative_to(tmp_path.resolve())


async def test_save_copies_then_renames_a_synced_file_into_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    media = LocalMediaStorage(tmp_path / "media")
    source = tmp_path / "upload.bin"
    content = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(content)
    key = new_key("png")
    target = media.path_of(key)
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor: int) -> None:
        events.append("fsync")
        real_fsync(descriptor)

    def replace(src: str | Path, dst: str | Path) -> None:
        # At the rename, the whole content sits, synced, in a temporary file beside the target,
        # and the target does not exist yet: no reader can ever see a partial file.
        assert Path(src).parent == Path(dst).parent == target.parent
        assert Path(src).name.startswith(".tmp-")
        assert not Path(dst).exists()
        assert Path(src).read_bytes() == content
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    await media.save(key, source)
    # The file is synced before the rename, and the directory after it.
    assert events == ["fsync", "replace", "fsync"]
    assert target.read_bytes() == content
    assert sorted(p.name for p in target.parent.iterdir()) == [key]
    assert await media.exists(key)
    opened = await media.open(key)
    assert opened is not None and opened.size == len(content) and opened.path == target


async def test_a_failed_save_leaves_no_file_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    media = LocalMediaStorage(tmp_path / "media")
    source = tmp_path / "upload.bin"
    source.write_bytes(b"x" * 1000)
    key = new_key("gif")

    def failing_fsync(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        await media.save(key, source)
    assert not await media.exists(key)
    assert list(media.path_of(key).parent.iterdir()) == []


async def test_delete_and_open_of_missing_or_malformed_keys(tmp_path: Path) -> None:
    media = LocalMediaStorage(tmp_path)
    source = tmp_path / "source"
    source.write_bytes(b"data")
    key = new_key("webp")
    await media.save(key, source)
    await media.delete(key)
    await media.delete(key)  # a missing file is not an error
    assert await media.open(key) is None
    assert await media.open("../source") is None
    assert not await media.exists("../source")
    assert source.exists()


async def test_written_between_lists_old_files_and_drops_interrupted_saves(tmp_path: Path) -> None:
    media = LocalMediaStorage(tmp_path)
    source = tmp_path / "source"
    source.write_bytes(b"data")
    old, recent, ancient = new_key("png"), new_key("png"), new_key("png")
    for key in (old, recent, ancient):
        await media.save(key, source)
    now = datetime.now(UTC)
    for key, age in ((old, timedelta(hours=30)), (ancient, timedelta(days=10))):
        stamp = (now - age).timestamp()
        os.utime(media.path_of(key), (stamp, stamp))
    leftover = media.path_of(old).parent / ".tmp-interrupted"
    leftover.write_bytes(b"half")
    stamp = (now - timedelta(hours=30)).timestamp()
    os.utime(leftover, (stamp, stamp))

    listed = await media.written_between(now - timedelta(days=2), now - timedelta(hours=24))
    assert listed == [old]
    assert not leftover.exists()


def test_media_dir_defaults_under_var_dir(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path, _env_file=None)
    assert settings.media_dir == tmp_path / "media"
    assert settings.media_root == tmp_path / "media"
    assert settings.media_max_bytes == 10 * 1024 * 1024
    assert settings.media_max_pixels == 33_000_000
    chosen = Settings(var_dir=tmp_path, media_dir=tmp_path / "elsewhere", _env_file=None)
    assert chosen.media_root == tmp_path / "elsewhere"
