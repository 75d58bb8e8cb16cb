"""Caching (docs/api.md#conventions): ETags, `If-None-Match` and 304 on single resources and lists."""

from __future__ import annotations

import httpx

from kith.runtime.resources import Resources
from tests.helpers import API, assert_problem
from tests.posting import member


async def test_single_resource_round_trip(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    created = await client.post(f"{API}/posts", json={"content": "first"}, headers=ada.headers)
    url = f"{API}/posts/{created.json()['id']}"

    first = await client.get(url, headers=ada.headers)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert "Authorization" in [item.strip() for item in first.headers["vary"].split(",")]
    assert first.headers["cache-control"] == "private, no-cache"

    again = await client.get(url, headers=ada.headers)
    assert again.headers["etag"] == etag  # the same body gives the same tag

    cached = await client.get(url, headers={**ada.headers, "If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    assert cached.headers["cache-control"] == "private, no-cache"
    assert "Authorization" in cached.headers["vary"]
    assert "content-type" not in cached.headers
    assert cached.headers["x-request-id"]


async def test_changed_resource_gets_a_new_tag(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    created = await client.post(f"{API}/posts", json={"content": "first"}, headers=ada.headers)
    url = f"{API}/posts/{created.json()['id']}"
    etag = (await client.get(url, headers=ada.headers)).headers["etag"]

    edited = await client.patch(url, json={"content": "second"}, headers=ada.headers)
    assert edited.status_code == 200

    fresh = await client.get(url, headers={**ada.headers, "If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.json()["content"] == "second"
    assert fresh.headers["etag"] != etag


async def test_list_round_trip_and_change(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    await client.post(f"{API}/posts", json={"content": "one"}, headers=ada.headers)
    url = f"{API}/users/{ada.id}/posts"

    first = await client.get(url, headers=ada.headers)
    etag = first.headers["etag"]
    assert "Authorization" in first.headers["vary"]
    cached = await client.get(url, headers={**ada.headers, "If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""

    await client.post(f"{API}/posts", json={"content": "two"}, headers=ada.headers)
    changed = await client.get(url, headers={**ada.headers, "If-None-Match": etag})
    assert changed.status_code == 200
    assert len(changed.json()["items"]) == 2
    assert changed.headers["etag"] != etag


async def test_if_none_match_lists_and_star(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    url = f"{API}/notifications/unread-count"
    etag = (await client.get(url, headers=ada.headers)).headers["etag"]

    listed = await client.get(url, headers={**ada.headers, "If-None-Match": f'"other", W/{etag}'})
    assert listed.status_code == 304
    star = await client.get(url, headers={**ada.headers, "If-None-Match": "*"})
    assert star.status_code == 304
    miss = await client.get(url, headers={**ada.headers, "If-None-Match": '"other"'})
    assert miss.status_code == 200
    assert miss.json() == {"count": 0}


async def test_no_store_routes_keep_no_store_on_304(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    first = await client.get(f"{API}/users/me", headers=ada.headers)
    assert first.headers["cache-control"] == "no-store"
    cached = await client.get(
        f"{API}/users/me", headers={**ada.headers, "If-None-Match": first.headers["etag"]}
    )
    assert cached.status_code == 304
    assert cached.headers["cache-control"] == "no-store"


async def test_errors_and_writes_carry_no_etag(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    missing = await client.get(f"{API}/posts/nope", headers=ada.headers)
    assert_problem(missing, 404)
    assert "etag" not in missing.headers
    # A tag that happens to match nothing does not turn an error into a 304.
    star = await client.get(f"{API}/posts/nope", headers={**ada.headers, "If-None-Match": "*"})
    assert star.status_code == 404
    created = await client.post(f"{API}/posts", json={"content": "x"}, headers=ada.headers)
    assert "etag" not in created.headers
