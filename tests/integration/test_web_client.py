"""The web client as the server delivers it: one page at every client address, assets under
a content version, cached for good and compressed, and the page's strict CSP."""

from __future__ import annotations

import gzip
import re

import httpx
import pytest

from kith.web.router import CLIENT, PAGE_PATHS
from tests.helpers import API, assert_problem

ADDRESSES = [
    path.replace("{post_id}", "0190aaaa-0000-7000-8000-000000000000").replace("{user_id}", "x")
    for path in PAGE_PATHS
]


@pytest.mark.parametrize("path", ADDRESSES)
async def test_every_client_address_answers_the_page(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert f'src="/assets/{CLIENT.version}/app.js"' in response.text


async def test_the_page_has_a_strict_csp_and_no_inline_script(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    csp = {part.split(" ", 1)[0]: part for part in response.headers["content-security-policy"].split("; ")}
    assert csp["default-src"] == "default-src 'none'"
    assert csp["script-src"] == "script-src 'self'"
    assert csp["style-src"] == "style-src 'self'"
    assert csp["frame-ancestors"] == "frame-ancestors 'none'"
    assert csp["base-uri"] == "base-uri 'none'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert "https://kith.example" in csp["img-src"], "media URLs are built on the public URL"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", response.text, re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    assert " style=" not in response.text and "<style" not in response.text


async def test_the_page_revalidates_with_its_etag(client: httpx.AsyncClient) -> None:
    first = await client.get("/")
    again = await client.get("/settings", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize("name", sorted(CLIENT.assets))
async def test_assets_are_immutable_under_their_version_and_gzipped(
    client: httpx.AsyncClient, name: str
) -> None:
    url = f"/assets/{CLIENT.version}/{name}"
    response = await client.get(url, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    asset = CLIENT.assets[name]
    assert response.content == asset.body  # httpx decodes gzip
    if len(asset.body) >= 1024:
        assert response.headers["content-encoding"] == "gzip"
        raw = await client.get(url, headers={"Accept-Encoding": "gzip"})
        assert int(raw.headers["content-length"]) < len(asset.body)
    plain = await client.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == asset.body
    revalidated = await client.get(url, headers={"If-None-Match": response.headers["etag"]})
    assert revalidated.status_code == 304
    if name.endswith(".js"):
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"


async def test_an_asset_of_another_version_or_name_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"/assets/{'0' * 16}/app.js"), 404)
    assert_problem(await client.get(f"/assets/{CLIENT.version}/nothing.js"), 404)
    assert_problem(await client.get(f"/assets/{CLIENT.version}/index.html"), 404)


def test_the_version_changes_with_any_asset(tmp_path: object) -> None:
    from pathlib import Path

    from kith.web.router import STATIC_DIR, Client

    root = Path(str(tmp_path))
    for path in STATIC_DIR.iterdir():
        (root / path.name).write_bytes(path.read_bytes())
    assert Client(root).version == CLIENT.version
    (root / "style.css").write_bytes((root / "style.css").read_bytes() + b"\n/* changed */\n")
    changed = Client(root)
    assert changed.version != CLIENT.version
    assert f"/assets/{changed.version}/app.js" in changed.page.body.decode()


async def test_the_api_keeps_its_paths_and_the_docs_stay(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 200
    response = await client.get(f"{API}/nothing-here")
    assert_problem(response, 404)
    # Unknown addresses outside the client's are not the page either.
    assert_problem(await client.get("/no-such-page"), 404)


def test_gzip_is_what_we_think() -> None:
    # The pre-compressed bodies decompress to the files themselves.
    for asset in CLIENT.assets.values():
        if asset.gzipped is not None:
            assert gzip.decompress(asset.gzipped) == asset.body
