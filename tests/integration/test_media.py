"""Media: uploads judged by content, re-encoded, capped while streaming, served, cleaned up.

See docs/api.md#posts-media-likes-comments.
"""

from __future__ import annotations

import asyncio
import io
import socket
import struct
import zlib
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image, ImageCms, PngImagePlugin

from kith.core.config import Settings
from kith.core.errors import Conflict
from kith.db.models import Media, Post, User
from kith.main import create_app
from kith.media import jobs as media_jobs
from kith.media import service as media_service
from kith.media.storage import new_key
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.helpers import (
    API,
    MEDIA,
    PASSWORD,
    Account,
    assert_problem,
    field_errors,
    record_pixel_decoding,
    signup,
)

# Small, so the cap tests stay fast; the default (10 MiB) is checked in the unit tests.
MAX_BYTES = 64 * 1024
PUBLIC_MEDIA = f"https://kith.example{MEDIA}/"
GPS_PLACE = "Alexanderplatz"
UNKNOWN_KEY = "286ca620720c62a3c2db721ace02a9cc"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    settings.media_max_bytes = MAX_BYTES
    return settings


# --- images made here ---------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x010E] = GPS_PLACE  # ImageDescription
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}  # GPSInfo
    return exif


def jpeg_with_gps() -> bytes:
    data = encode(Image.new("RGB", (64, 48), (200, 30, 30)), "JPEG", exif=gps_exif(), quality=95)
    # The file really carries the location before the upload.
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get_ifd(0x8825)[2] == (52.0, 31.0, 12.0)
    return data


def png_bytes(size: tuple[int, int] = (30, 20), text: str = "where I live") -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", text)
    return encode(Image.new("RGBA", size, (0, 128, 255, 128)), "PNG", pnginfo=info)


def png_of_exactly(size: int) -> bytes:
    """A valid PNG of exactly `size` bytes, padded with a text chunk."""
    base = len(png_bytes(text=""))
    data = png_bytes(text="x" * (size - base))
    assert len(data) == size
    return data


def gif_bytes() -> bytes:
    frames = [Image.new("P", (40, 30), color) for color in (1, 2, 3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], comment=b"secret", loop=0)


def webp_bytes() -> bytes:
    return encode(Image.new("RGB", (50, 40), (10, 200, 10)), "WEBP", exif=gps_exif())


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width × height; its pixel data is a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


# --- client helpers -----------------------------------------------------------------


async def upload(
    client: httpx.AsyncClient,
    account: Account,
    data: bytes,
    filename: str = "photo.jpg",
    content_type: str = "image/jpeg",
) -> httpx.Response:
    return await client.post(
        f"{API}/media", files={"file": (filename, data, content_type)}, headers=account.headers
    )


async def uploaded(client: httpx.AsyncClient, account: Account, data: bytes, **kwargs: str) -> dict[str, Any]:
    response = await upload(client, account, data, **kwargs)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def fetch(client: httpx.AsyncClient, url: str, **headers: str) -> httpx.Response:
    assert url.startswith(PUBLIC_MEDIA), url
    return await client.get(url.removeprefix("https://kith.example"), headers=headers)


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


async def patch_me(client: httpx.AsyncClient, account: Account, body: dict[str, Any]) -> httpx.Response:
    return await client.patch(f"{API}/users/me", json=body, headers=account.headers)


async def post_with_media(resources: Resources, author: Account, media_ids: list[str]) -> str:
    """A post with attached images, made through the media service that the posts domain uses."""
    async with unit_of_work(resources) as session:
        owner = await session.get(User, author.id)
        assert owner is not None
        post = Post(author_id=author.id, content="with pictures")
        session.add(post)
        await session.flush()
        await media_service.attach_to_post(session, owner, post, media_ids, now=resources.clock.now())
        return post.id


async def media_row(resources: Resources, media_id: str) -> Media | None:
    async with unit_of_work(resources, write=False) as session:
        return await session.get(Media, media_id)


# --- POST /media ----------------------------------------------------------------------


SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize(
    ("fmt", "filename"), [("JPEG", "photo.jpg"), ("PNG", "photo.png"), ("WEBP", "p.webp")]
)
@pytest.mark.parametrize(
    ("uploaded", "kept"),
    [
        (SRGB, SRGB),  # a real profile is kept
        (SRGB + b"<script>smuggled</script>" * 20, SRGB),  # bytes riding after it are not
        (b"not a colour profile at all " * 40, None),  # bytes that are no profile are dropped
    ],
    # Named ids: the profile's bytes hold the time LittleCMS made it, which differs between
    # xdist workers, and every worker must collect the same tests.
    ids=["valid", "valid-with-trailing-bytes", "not-a-profile"],
)
async def test_only_a_colour_profile_that_parses_is_kept(
    client: httpx.AsyncClient, fmt: str, filename: str, uploaded: bytes, kept: bytes | None
) -> None:
    account = await signup(client, "colourist")
    data = encode(Image.new("RGB", (40, 30), (90, 60, 30)), fmt, icc_profile=uploaded)
    with Image.open(io.BytesIO(data)) as original:
        assert original.info.get("icc_profile") == uploaded
    response = await upload(client, account, data, filename, f"image/{fmt.lower()}")
    assert response.status_code == 201, response.text
    served = await fetch(client, response.json()["url"])
    with Image.open(io.BytesIO(served.content)) as stored:
        assert stored.info.get("icc_profile") == kept
    assert b"smuggled" not in served.content


async def test_jpeg_comes_back_without_exif_or_gps(client: httpx.AsyncClient, resources: Resources) -> None:
    account = await signup(client, "photographer")
    original = jpeg_with_gps()
    response = await upload(client, account, original)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "url", "content_type", "width", "height", "size"}
    assert body["content_type"] == "image/jpeg"
    assert response.headers["location"] == body["url"]
    assert body["url"].startswith(PUBLIC_MEDIA) and body["url"].endswith(".jpg")
    # The EXIF orientation was applied to the pixels before the EXIF was dropped.
    assert (body["width"], body["height"]) == (48, 64)

    served = await fetch(client, body["url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert len(served.content) == body["size"] == int(served.headers["content-length"])
    assert served.content != original
    with Image.open(io.BytesIO(served.content)) as image:
        assert image.format == "JPEG"
        assert image.size == (48, 64)
        assert "exif" not in image.info
        assert dict(image.getexif()) == {}
        assert image.getexif().get_ifd(0x8825) == {}
    for secret in (b"Exif", b"PhoneMaker", b"Model X", GPS_PLACE.encode()):
        assert secret not in served.content
    row = await media_row(resources, body["id"])
    assert row is not None and row.attached_at is None and row.size == body["size"]


@pytest.mark.parametrize(
    ("make", "filename", "content_type", "size", "fmt", "secret"),
    [
        (png_bytes, "a.png", "image/png", (30, 20), "PNG", b"where I live"),
        (gif_bytes, "a.gif", "image/gif", (40, 30), "GIF", b"secret"),
        # 50 x 40, turned upright by its EXIF orientation.
        (webp_bytes, "a.webp", "image/webp", (40, 50), "WEBP", GPS_PLACE.encode()),
    ],
)
async def test_png_gif_and_webp_uploads(
    client: httpx.AsyncClient,
    make: Any,
    filename: str,
    content_type: str,
    size: tuple[int, int],
    fmt: str,
    secret: bytes,
) -> None:
    account = await signup(client, "uploader")
    original: bytes = make()
    assert secret in original
    body = await uploaded(client, account, original, filename=filename, content_type=content_type)
    assert body["content_type"] == content_type
    assert (body["width"], body["height"]) == size
    assert body["url"].endswith("." + filename.rsplit(".", 1)[1])
    served = await fetch(client, body["url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == content_type
    assert len(served.content) == body["size"]
    assert secret not in served.content
    with Image.open(io.BytesIO(served.content)) as image:
        assert image.format == fmt
        assert image.size == size
        assert dict(image.getexif()) == {}
        # Animated images keep their first frame only.
        assert getattr(image, "n_frames", 1) == 1


async def test_type_is_judged_by_content_not_by_name_or_declared_type(client: httpx.AsyncClient) -> None:
    account = await signup(client, "namer")
    body = await uploaded(client, account, png_bytes(), filename="notes.txt", content_type="text/plain")
    assert body["content_type"] == "image/png"
    assert body["url"].endswith(".png")


@pytest.mark.parametrize(
    "data",
    [
        b"<html><script>alert(document.cookie)</script></html>",
        b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
        encode(Image.new("RGB", (10, 10)), "BMP"),
        encode(Image.new("RGB", (10, 10)), "TIFF"),
        b"",
    ],
    ids=["html", "svg", "bmp", "tiff", "empty"],
)
async def test_anything_but_the_four_formats_is_415(
    client: httpx.AsyncClient, settings: Settings, data: bytes
) -> None:
    account = await signup(client, "faker")
    response = await upload(client, account, data, filename="cute.png", content_type="image/png")
    assert_problem(response, 415, "unsupported_media_type")
    assert files_under(settings.media_root) == []


@pytest.mark.parametrize("dimensions", [(30000, 30000), (7000, 5000)], ids=["bomb", "35mpx"])
async def test_too_many_pixels_refused_from_the_header_without_decoding(
    client: httpx.AsyncClient,
    settings: Settings,
    dimensions: tuple[int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 30000 x 30000 trips Pillow's own bomb guard; 7000 x 5000 (35 Mpx) only the 33 Mpx cap.
    account = await signup(client, "bomber")
    data = png_header_only(*dimensions)
    assert len(data) < 200
    # Decoding 900 Mpx (2.7 GB of RGB) would take many seconds: no pixel may be decoded.
    decoded = record_pixel_decoding(monkeypatch)
    response = await upload(client, account, data, filename="tiny.png", content_type="image/png")
    assert_problem(response, 422, "image_too_large")
    assert field_errors(response) == {"body.file"}
    assert decoded == []
    assert files_under(settings.media_root) == []


async def test_damaged_image_is_422(client: httpx.AsyncClient) -> None:
    account = await signup(client, "damaged")
    data = encode(Image.effect_noise((200, 200), 64).convert("RGB"), "PNG")
    response = await upload(
        client, account, data[: len(data) // 2], filename="x.png", content_type="image/png"
    )
    assert_problem(response, 422, "invalid_image")


async def test_file_exactly_at_the_cap_is_accepted_one_byte_more_is_413(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    account = await signup(client, "capped")
    at_cap = png_of_exactly(MAX_BYTES)
    body = await uploaded(client, account, at_cap, filename="cap.png", content_type="image/png")
    assert body["content_type"] == "image/png"
    stored = files_under(settings.media_root)
    # Bytes after IEND are ignored by PNG readers: a valid image, one byte over the cap.
    response = await upload(client, account, at_cap + b"\0", filename="over.png", content_type="image/png")
    assert_problem(response, 413, "payload_too_large")
    assert files_under(settings.media_root) == stored


def multipart_stream(
    boundary: str, file_size: int, consumed: list[int], chunk: int = 8192
) -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        consumed[0] += len(head)
        yield head
        for _ in range(file_size // chunk):
            consumed[0] += chunk
            yield b"\x89" * chunk
        tail = f"\r\n--{boundary}--\r\n".encode()
        consumed[0] += len(tail)
        yield tail

    return body()


async def test_413_comes_before_the_whole_body_is_read(client: httpx.AsyncClient, settings: Settings) -> None:
    account = await signup(client, "streamer")
    boundary = "kithboundary1234"
    total = 100 * MAX_BYTES
    consumed = [0]
    response = await client.post(
        f"{API}/media",
        content=multipart_stream(boundary, total, consumed),
        headers={**account.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    body = assert_problem(response, 413, "payload_too_large")
    assert "65,536 bytes" in body["detail"]
    assert response.headers["connection"] == "close"
    # No Content-Length was sent (chunked): the count stopped the read just past the cap.
    assert consumed[0] < MAX_BYTES + 3 * 8192, consumed[0]
    assert files_under(settings.media_root) == []


async def test_declared_content_length_over_the_cap_is_refused_unread(client: httpx.AsyncClient) -> None:
    account = await signup(client, "declarer")
    boundary = "kithboundary5678"
    consumed = [0]
    response = await client.post(
        f"{API}/media",
        content=multipart_stream(boundary, 100 * MAX_BYTES, consumed),
        headers={
            **account.headers,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(100 * MAX_BYTES + 200),
        },
    )
    assert_problem(response, 413, "payload_too_large")
    assert consumed[0] == 0


async def test_413_over_a_real_socket_before_the_body_is_sent(app: FastAPI) -> None:
    # uvicorn, as `kith serve` runs it: the client declares 1 GB and sends only the start.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.listen()  # connections wait in the backlog until uvicorn accepts them
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            account = await signup(http, "socketeer")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            f"POST {API}/media HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {account.access_token}\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {1024**3}\r\n\r\n"
            '--xyz\r\nContent-Disposition: form-data; name="file"; filename="huge.png"\r\n\r\n'
        )
        writer.write(head.encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=5)
        assert status_line.startswith(b"HTTP/1.1 413"), status_line
        writer.close()
    finally:
        server.should_exit = True
        await serving
        listener.close()


def part(name: str, data: bytes, filename: str | None = "a.png") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--b0undary\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"


MULTIPART = "multipart/form-data; boundary=b0undary"
CLOSE = b"--b0undary--\r\n"


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code", "fields"),
    [
        (MULTIPART, CLOSE, 422, "validation_error", {"body.file"}),
        (
            MULTIPART,
            part("file", b"x") + part("caption", b"hi", None) + CLOSE,
            422,
            "validation_error",
            {"body.caption"},
        ),
        (
            MULTIPART,
            part("file", png_bytes()) + part("file", png_bytes()) + CLOSE,
            422,
            "malformed_multipart",
            {"body"},
        ),
        (MULTIPART, part("file", png_bytes()), 422, "malformed_multipart", {"body"}),
        (MULTIPART, b"no boundary anywhere in here", 422, "malformed_multipart", {"body"}),
        ("multipart/form-data", part("file", png_bytes()) + CLOSE, 422, "malformed_multipart", {"body"}),
        ("application/json", b'{"file": "x"}', 415, "unsupported_media_type", set()),
        (None, b"", 415, "unsupported_media_type", set()),
    ],
    ids=["no-part", "extra-field", "two-files", "unterminated", "garbage", "no-boundary", "json", "empty"],
)
async def test_bad_multipart_bodies(
    client: httpx.AsyncClient,
    settings: Settings,
    content_type: str | None,
    body: bytes,
    status: int,
    code: str,
    fields: set[str],
) -> None:
    account = await signup(client, "sloppy")
    headers = {**account.headers, **({"Content-Type": content_type} if content_type else {})}
    response = await client.post(f"{API}/media", content=body, headers=headers)
    assert_problem(response, status, code)
    assert field_errors(response) == fields
    assert files_under(settings.media_root) == []


async def test_upload_needs_credentials_and_a_write_scope(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/media", files={"file": ("a.png", png_bytes(), "image/png")})
    assert_problem(response, 401, "not_authenticated")
    account = await signup(client, "scripted")
    keys = {}
    for scopes in (["read"], ["read", "write"]):
        created = await client.post(
            f"{API}/users/me/api-keys",
            json={"name": "-".join(scopes), "scopes": scopes},
            headers=account.headers,
        )
        assert created.status_code == 201, created.text
        keys[len(scopes)] = created.json()["key"]
    files = {"file": ("a.png", png_bytes(), "image/png")}
    read_only = await client.post(f"{API}/media", files=files, headers={"X-API-Key": keys[1]})
    assert_problem(read_only, 403, "insufficient_scope")
    writer = await client.post(f"{API}/media", files=files, headers={"X-API-Key": keys[2]})
    assert writer.status_code == 201, writer.text


async def test_a_failed_transaction_removes_the_stored_file(
    client: httpx.AsyncClient, resources: Resources, tmp_path: Path
) -> None:
    account = await signup(client, "unlucky")
    source = tmp_path / "upload.png"
    source.write_bytes(png_bytes())
    stored = await media_service.store_image(resources.media, resources.settings, source)
    assert await resources.media.exists(stored.key)
    with pytest.raises(Conflict):
        async with unit_of_work(resources) as session:
            owner = await session.get(User, account.id)
            assert owner is not None
            await media_service.record_upload(
                session, resources.media, owner, stored, now=resources.clock.now()
            )
            raise Conflict()
    assert not await resources.media.exists(stored.key)


# --- GET /media/{key} -------------------------------------------------------------------


async def test_files_are_served_with_cache_and_nosniff_headers(client: httpx.AsyncClient) -> None:
    account = await signup(client, "cached")
    body = await uploaded(client, account, png_bytes(), filename="a.png", content_type="image/png")
    served = await fetch(client, body["url"])  # no credentials: anyone with the URL
    assert served.status_code == 200
    assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-type"] == "image/png"
    etag = served.headers["etag"]
    again = await fetch(client, body["url"], **{"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    assert again.headers["cache-control"] == "public, max-age=31536000, immutable"
    other = await fetch(client, body["url"], **{"If-None-Match": '"something-else"'})
    assert other.status_code == 200


@pytest.mark.parametrize(
    "tail",
    [
        "../kith.db",
        "..%2fkith.db",
        "..%2F..%2Fsecret_key",
        "%2e%2e",
        "%2e%2e%2fkith.db",
        "%2e%2e%2f%2e%2e%2fsecret_key",
        ".incoming",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "C:%5Cwindows%5Cwin.ini",
        # Well-formed keys (what new_key makes) of files that do not exist; fixed, because
        # every xdist worker must collect the same test ids.
        UNKNOWN_KEY + ".jpg",
        (UNKNOWN_KEY + ".png").upper(),
        UNKNOWN_KEY + ".png%00.png",
        UNKNOWN_KEY + ".png%0a",
        "0" * 32 + ".svg",
        "0" * 32 + ".html",
    ],
)
async def test_path_tricks_and_unknown_keys_are_404(
    client: httpx.AsyncClient, settings: Settings, tail: str
) -> None:
    account = await signup(client, "tricky")
    body = await uploaded(client, account, png_bytes(), filename="a.png", content_type="image/png")
    stored = files_under(settings.media_root)
    assert len(stored) == 1
    # A sibling of the stored file and files above the media folder exist to be reached.
    (stored[0].parent / ("0" * 32 + ".svg")).write_text("<svg/>")
    assert (settings.var_dir / "secret_key").exists()
    key = body["url"].rsplit("/", 1)[1]
    assert len(UNKNOWN_KEY) == len(key.split(".")[0])  # the unknown keys look like real ones
    for prefix in (f"{MEDIA}/", f"{MEDIA}/{key[:2]}/"):
        response = await client.get(prefix + tail)
        assert_problem(response, 404)
        assert response.headers["content-type"] == "application/problem+json"


# --- clean-up -------------------------------------------------------------------------


async def test_unattached_uploads_are_removed_after_24_hours_attached_ones_and_avatars_kept(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    owner = await signup(client, "keeper")
    loose = await uploaded(client, owner, png_bytes(), filename="a.png", content_type="image/png")
    posted = await uploaded(client, owner, gif_bytes(), filename="b.gif", content_type="image/gif")
    avatar = await uploaded(client, owner, jpeg_with_gps())
    await post_with_media(resources, owner, [posted["id"]])
    assert (await patch_me(client, owner, {"avatar_media_id": avatar["id"]})).status_code == 200
    assert len(files_under(settings.media_root)) == 3

    resources.clock.advance(hours=23)
    assert await media_jobs.remove_expired_uploads(resources) == 0
    assert (await fetch(client, loose["url"])).status_code == 200

    resources.clock.advance(hours=2)
    assert await media_jobs.remove_expired_uploads(resources) == 1
    assert await media_row(resources, loose["id"]) is None
    assert_problem(await fetch(client, loose["url"]), 404, "media_not_found")
    for kept in (posted, avatar):
        assert await media_row(resources, kept["id"]) is not None
        assert (await fetch(client, kept["url"])).status_code == 200
    assert len(files_under(settings.media_root)) == 2
    # A second round finds nothing more to do.
    assert await media_jobs.remove_expired_uploads(resources) == 0


async def test_a_deleted_posts_images_answer_404_at_once(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    owner = await signup(client, "deleter")
    image = await uploaded(client, owner, png_bytes(), filename="a.png", content_type="image/png")
    post_id = await post_with_media(resources, owner, [image["id"]])
    assert (await fetch(client, image["url"])).status_code == 200
    assert (await client.delete(f"{API}/posts/{post_id}", headers=owner.headers)).status_code == 204
    # No clean-up round, no job: gone when the DELETE answered.
    assert_problem(await fetch(client, image["url"]), 404, "media_not_found")
    assert await media_row(resources, image["id"]) is None
    assert not await resources.media.exists(image["url"].rsplit("/", 1)[1])


async def test_a_post_deletion_that_rolls_back_keeps_its_images(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    owner = await signup(client, "regretful")
    image = await uploaded(client, owner, png_bytes(), filename="a.png", content_type="image/png")
    post_id = await post_with_media(resources, owner, [image["id"]])
    with pytest.raises(Conflict):
        async with unit_of_work(resources) as session:
            await media_service.forget_post_media(session, resources.media, post_id)
            raise Conflict()
    assert await media_row(resources, image["id"]) is not None
    assert (await fetch(client, image["url"])).status_code == 200


async def test_files_without_a_row_are_swept(
    client: httpx.AsyncClient, resources: Resources, tmp_path: Path
) -> None:
    # What a crash between storing a file and committing its row leaves behind.
    source = tmp_path / "orphan.png"
    source.write_bytes(png_bytes())
    key = new_key("png")
    await resources.media.save(key, source)
    account = await signup(client, "rowed")
    kept = await uploaded(client, account, png_bytes(), filename="a.png", content_type="image/png")
    await post_with_media(resources, account, [kept["id"]])
    resources.clock.advance(hours=1)
    assert await media_jobs.remove_expired_uploads(resources) == 0
    assert await resources.media.exists(key)
    resources.clock.advance(hours=24)
    assert await media_jobs.remove_expired_uploads(resources) == 1
    assert not await resources.media.exists(key)
    assert (await fetch(client, kept["url"])).status_code == 200


async def test_deleting_an_account_deletes_its_files(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    account = await signup(client, "leaving")
    await uploaded(client, account, png_bytes(), filename="a.png", content_type="image/png")
    avatar = await uploaded(client, account, png_bytes(), filename="b.png", content_type="image/png")
    assert (await patch_me(client, account, {"avatar_media_id": avatar["id"]})).status_code == 200
    assert len(files_under(settings.media_root)) == 2
    response = await client.request(
        "DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=account.headers
    )
    assert response.status_code == 204, response.text
    await resources.jobs.wait_idle()
    assert files_under(settings.media_root) == []


async def test_the_app_runs_the_clean_up_periodically_on_the_embedded_default(settings: Settings) -> None:
    settings.media_cleanup_interval_seconds = 0.05
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        resources: Resources = app.state.resources
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            account = await signup(client, "periodic")
            image = await uploaded(client, account, png_bytes(), filename="a.png", content_type="image/png")
            resources.clock.advance(hours=25)
            for _ in range(100):
                if await media_row(resources, image["id"]) is None:
                    break
                await asyncio.sleep(0.05)
            assert await media_row(resources, image["id"]) is None
            assert (await fetch(client, image["url"])).status_code == 404


# --- avatars ------------------------------------------------------------------------


async def test_avatar_set_and_removed_through_patch_users_me(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    account = await signup(client, "faceful")
    first = await uploaded(client, account, jpeg_with_gps())
    response = await patch_me(client, account, {"avatar_media_id": first["id"]})
    assert response.status_code == 200, response.text
    assert response.json()["avatar_url"] == first["url"]
    assert (await client.get(f"{API}/users/{account.id}", headers=account.headers)).json()[
        "avatar_url"
    ] == first["url"]
    assert (await fetch(client, response.json()["avatar_url"])).status_code == 200
    # Setting the same avatar again changes nothing; other fields may come along.
    again = await patch_me(client, account, {"avatar_media_id": first["id"], "bio": "new face"})
    assert again.status_code == 200, again.text
    assert again.json()["avatar_url"] == first["url"]

    second = await uploaded(client, account, png_bytes(), filename="b.png", content_type="image/png")
    replaced = await patch_me(client, account, {"avatar_media_id": second["id"]})
    assert replaced.json()["avatar_url"] == second["url"]
    # Leaving the field out keeps the avatar.
    kept = await patch_me(client, account, {"display_name": "Faceful"})
    assert kept.json()["avatar_url"] == second["url"]

    removed = await patch_me(client, account, {"avatar_media_id": None})
    assert removed.status_code == 200
    assert removed.json()["avatar_url"] is None
    me = await client.get(f"{API}/users/me", headers=account.headers)
    assert me.json()["avatar_url"] is None

    # Former avatars are unattached uploads now: the clean-up removes them.
    resources.clock.advance(hours=25)
    assert await media_jobs.remove_expired_uploads(resources) == 2
    for former in (first, second):
        assert (await fetch(client, former["url"])).status_code == 404


async def test_avatar_must_be_an_unattached_upload_of_ones_own(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    owner = await signup(client, "owner")
    other = await signup(client, "borrower")
    theirs = await uploaded(client, owner, png_bytes(), filename="a.png", content_type="image/png")
    on_post = await uploaded(client, other, png_bytes(), filename="b.png", content_type="image/png")
    await post_with_media(resources, other, [on_post["id"]])
    before = (await client.get(f"{API}/users/me", headers=other.headers)).json()
    for media_id in (theirs["id"], on_post["id"], "01234567-89ab-7def-8123-456789abcdef"):
        response = await patch_me(client, other, {"avatar_media_id": media_id, "bio": "changed"})
        assert_problem(response, 400, "media_not_available")
        assert field_errors(response) == {"body.avatar_media_id"}
    for media_id in ("", "x" * 65):  # not an id at all
        response = await patch_me(client, other, {"avatar_media_id": media_id, "bio": "changed"})
        assert_problem(response, 422, "validation_error")
        assert field_errors(response) == {"body.avatar_media_id"}
    assert (await client.get(f"{API}/users/me", headers=other.headers)).json() == before
    # The owner's upload is still theirs to use.
    response = await patch_me(client, owner, {"avatar_media_id": theirs["id"]})
    assert response.status_code == 200
    assert response.json()["avatar_url"] == theirs["url"]


async def test_an_interrupted_upload_leaves_nothing_behind(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    account = await signup(client, "quitter")
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": part("file", b"\x89PNG" + b"\0" * 5000)[:3000], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"{API}/media",
        "raw_path": f"{API}/media".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {account.access_token}".encode()),
            (b"content-type", MULTIPART.encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert b'"code":"upload_interrupted"' in sent[1]["body"]
    assert files_under(settings.media_root) == []
