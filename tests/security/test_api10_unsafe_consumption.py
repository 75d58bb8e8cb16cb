"""OWASP API10:2023 Unsafe Consumption of APIs.

What Kith takes from outside and passes on: images (decoded by Pillow, served back to
browsers) and names (written into e-mails sent by SMTP). Hostile images come back as
plain re-encoded pictures, or not at all; display names never reach an e-mail header.
EXIF and GPS stripping, damaged and oversized images are in tests/integration/test_media.py.
"""

from __future__ import annotations

import io
from email.message import Message

import httpx
import pytest
from PIL import Image, PngImagePlugin

from kith.runtime.resources import Resources
from tests.conftest import Mailbox
from tests.helpers import API, assert_problem, field_errors, register
from tests.posting import member

SCRIPT = b"<script>alert(document.cookie)</script>"


def _png(text: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _gif_frames(count: int) -> bytes:
    buffer = io.BytesIO()
    frames = [Image.new("P", (8, 8), i % 255) for i in range(count)]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], loop=0)
    return buffer.getvalue()


async def _upload(
    client: httpx.AsyncClient, headers: dict[str, str], data: bytes, name: str, kind: str
) -> httpx.Response:
    return await client.post(f"{API}/media", files={"file": (name, data, kind)}, headers=headers)


async def test_hostile_images_come_back_as_plain_images_or_not_at_all(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
    html = b"<!doctype html><html><body>" + SCRIPT + b"</body></html>"
    for data, name in ((svg, "x.png"), (html, "x.gif"), (b"GIF89a" + SCRIPT, "x.gif"), (SCRIPT, "x.jpg")):
        assert_problem(
            await _upload(client, ada.headers, data, name, "image/png"), 415, "unsupported_media_type"
        )

    # A real PNG carrying a script in a text chunk and after its end (a polyglot).
    polyglot = _png({"Comment": SCRIPT.decode()}) + SCRIPT
    created = await _upload(client, ada.headers, polyglot, "x.html", "text/html")
    assert created.status_code == 201, created.text
    served = await client.get(created.json()["url"].removeprefix("https://kith.example"))
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in served.headers["content-security-policy"]
    assert SCRIPT not in served.content and b"script" not in served.content.lower()
    assert Image.open(io.BytesIO(served.content)).info.get("Comment") is None

    # Thousands of frames: only the first is kept, so nothing multiplies the work later.
    animated = await _upload(client, ada.headers, _gif_frames(300), "a.gif", "image/gif")
    assert animated.status_code == 201
    stored = await client.get(animated.json()["url"].removeprefix("https://kith.example"))
    assert getattr(Image.open(io.BytesIO(stored.content)), "n_frames", 1) == 1


HOSTILE_NAMES = [
    "Eve\r\nBcc: everyone@evil.example",
    "Eve\nSubject: you won",
    "Eve\x00",
    "Eve\x1b[31m",
    # A right-to-left override: the name would read as another (refused since the review).
    "Ëvé \u202eelpmaxe.live@x",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_display_names_with_line_breaks_or_controls_are_refused(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await register(client, "eve", display_name=name)
    assert_problem(response, 422, "validation_error")
    assert field_errors(response) == {"body.display_name"}


def _recipients(message: Message) -> list[str]:
    return [value for key, value in message.items() if key.lower() in ("to", "cc", "bcc")]


async def test_display_names_reach_e_mails_only_in_their_text(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    # Legal names that look like headers, addresses or encoded words, and a Unicode line separator.
    names = [
        '"Admin" <admin@kith.example>, Bcc: x@evil.example',
        "=?utf-8?b?QmNjOiB4QGV2aWwuZXhhbXBsZQ==?=",
        "Eve\u2028Bcc: x@evil.example",
        "Ëvé elpmaxe.live@x",
    ]
    for number, name in enumerate(names):
        response = await register(client, f"guest{number}", display_name=name)
        assert response.status_code == 201, response.text
    await resources.jobs.wait_idle()
    for number, name in enumerate(names):
        messages = mailbox.to(f"guest{number}@example.com")
        assert {message["Subject"] for message in messages} == {
            "Confirm your e-mail address",
            "Welcome to Kith",
        }
        for message in messages:
            assert _recipients(message) == [f"guest{number}@example.com"]
            assert message["From"] == "Kith <no-reply@kith.local>"
            headers = "\n".join(f"{key}: {value}" for key, value in message.items())
            assert "evil" not in headers and "admin@" not in headers
            assert name in Mailbox.text_of(message)
