"""The web client and the API docs as the server delivers them: one page at every client
address, Swagger UI at /docs, assets under a content version, cached for good and compressed,
and each page's strict CSP."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import httpx
import pytest

from kith.web.assets import KITH, STATIC_DIR, SWAGGER_UI, Shelf
from kith.web.router import PAGE_PATHS
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
    assert f'src="/assets/{KITH.version}/app.js"' in response.text


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


SHELVED = [(shelf, name) for shelf in (KITH, SWAGGER_UI) for name in sorted(shelf.assets)]


@pytest.mark.parametrize(("shelf", "name"), SHELVED, ids=[name for _, name in SHELVED])
async def test_assets_are_immutable_under_their_version_and_gzipped(
    client: httpx.AsyncClient, shelf: Shelf, name: str
) -> None:
    url = f"/assets/{shelf.version}/{name}"
    response = await client.get(url, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    asset = shelf.assets[name]
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
    assert_problem(await client.get(f"/assets/{KITH.version}/nothing.js"), 404)
    assert_problem(await client.get(f"/assets/{KITH.version}/index.html"), 404)
    assert_problem(await client.get(f"/assets/{KITH.version}/api-docs.html"), 404)
    # Only the files the docs page loads, of Swagger UI's package.
    assert_problem(await client.get(f"/assets/{SWAGGER_UI.version}/swagger-ui-bundle.js.map"), 404)
    assert_problem(await client.get(f"/assets/{SWAGGER_UI.version}/index.html"), 404)


def test_the_version_changes_with_any_asset(tmp_path: Path) -> None:
    for path in STATIC_DIR.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    assert Shelf(tmp_path).version == KITH.version
    (tmp_path / "style.css").write_bytes((tmp_path / "style.css").read_bytes() + b"\n/* changed */\n")
    changed = Shelf(tmp_path)
    assert changed.version != KITH.version
    page = changed.page("index.html", {"assets": changed.base})
    assert f"/assets/{changed.version}/app.js" in page.body.decode()


async def test_the_docs_page_loads_swagger_ui_from_this_origin_only(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.text.startswith('<!doctype html>\n<html lang="en">')
    policy = response.headers["content-security-policy"]
    assert policy == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    # Every script, style sheet and icon is a file of this origin, under a version.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", response.text, re.S)
    assert scripts and all(not body.strip() for _, body in scripts)
    urls = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert f"{SWAGGER_UI.base}/swagger-ui-bundle.js" in urls
    assert f"{SWAGGER_UI.base}/swagger-ui.css" in urls
    assert f"{KITH.base}/api-docs.js" in urls
    for url in urls:
        assert url.startswith("/"), url
        loaded = await client.get(url)
        assert loaded.status_code == 200, url
    assert 'data-openapi-url="/openapi.json"' in response.text
    assert " style=" not in response.text and "<style" not in response.text
    again = await client.get("/docs", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304


def test_swagger_ui_is_the_packaged_dist() -> None:
    # The files of swagger-ui-dist as its package ships them, not a copy in this repository.
    assert "site-packages" in str(SWAGGER_UI.root) or "dist-packages" in str(SWAGGER_UI.root)
    assert b"SwaggerUIBundle" in SWAGGER_UI.assets["swagger-ui-bundle.js"].body
    assert b".swagger-ui" in SWAGGER_UI.assets["swagger-ui.css"].body


async def test_fastapis_docs_pages_are_gone(client: httpx.AsyncClient) -> None:
    # ReDoc and the OAuth2 redirect helper of FastAPI's Swagger UI loaded their files from a CDN;
    # Kith's only OAuth2 flow (password) never redirects.
    for path in ("/redoc", "/docs/oauth2-redirect"):
        assert_problem(await client.get(path), 404)


async def test_the_api_keeps_its_paths_and_the_docs_stay(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 200
    response = await client.get(f"{API}/nothing-here")
    assert_problem(response, 404)
    # Unknown addresses outside the client's are not the page either.
    assert_problem(await client.get("/no-such-page"), 404)


async def test_gzip_is_what_we_think() -> None:
    # The compressed bodies decompress to the files themselves.
    for shelf in (KITH, SWAGGER_UI):
        for asset in shelf.assets.values():
            if asset.compressible:
                assert gzip.decompress(await asset.gzipped()) == asset.body
