"""Discovery for Mastodon apps and NodeInfo crawlers (docs/mastodon.md): what the server
says about itself, and the empty lists an app fetches at start-up."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from kith import __version__
from kith.core.config import Settings
from kith.db.models import AuthSession, RefreshToken
from kith.main import create_app
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests import posting
from tests.helpers import API, Account, assert_mastodon_error, assert_problem

PUBLIC_URL = "https://kith.example"
NODEINFO = "http://nodeinfo.diaspora.software/ns/schema/"
MIME_TYPES = ["image/gif", "image/jpeg", "image/png", "image/webp"]


def local(url: str) -> str:
    assert url.startswith(PUBLIC_URL + "/"), url
    return url.removeprefix(PUBLIC_URL)


async def world(client: httpx.AsyncClient, resources: Resources) -> Account:
    """Two members (one of them with a post) and a suspended account."""
    ada, _bob, sus = await posting.members(resources, "ada", "bob", "sus")
    await posting.create_post(client, ada, content="hello")
    await posting.set_suspended(resources, sus)
    return ada


# --- NodeInfo --------------------------------------------------------------------------------


async def test_nodeinfo_is_discovered_and_describes_kith(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await world(client, resources)
    discovery = await client.get("/.well-known/nodeinfo")
    assert discovery.status_code == 200
    links = {link["rel"]: link["href"] for link in discovery.json()["links"]}
    assert set(links) == {NODEINFO + "2.0", NODEINFO + "2.1"}
    for version in ("2.0", "2.1"):
        response = await client.get(local(links[NODEINFO + version]))
        assert response.status_code == 200
        assert response.headers["content-type"] == f'application/json; profile="{NODEINFO}{version}#"'
        document = response.json()
        assert document == {
            "version": version,
            "software": {"name": "kith", "version": __version__},
            # Kith federates with nobody, so it claims no protocol.
            "protocols": [],
            "services": {"inbound": [], "outbound": []},
            "openRegistrations": True,
            "usage": {
                # The suspended account is not counted; each member logged in just now.
                "users": {"total": 2, "activeMonth": 2, "activeHalfyear": 2},
                "localPosts": 1,
            },
            "metadata": {"nodeName": "Kith", "nodeDescription": ""},
        }


async def _last_seen(resources: Resources, account: Account, days_ago: int) -> None:
    """Date every refresh token of `account` (each login and refresh makes one) `days_ago`."""
    async with unit_of_work(resources) as session:
        sessions = select(AuthSession.id).where(AuthSession.user_id == account.id)
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.session_id.in_(sessions))
            .values(created_at=resources.clock.now() - timedelta(days=days_ago))
        )


async def test_active_users_are_those_who_signed_in_or_refreshed_lately(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await posting.members(resources, "ada", "bob")

    async def active() -> dict[str, Any]:
        users: dict[str, Any] = (await client.get("/nodeinfo/2.1")).json()["usage"]["users"]
        return users

    assert await active() == {"total": 2, "activeMonth": 2, "activeHalfyear": 2}
    await _last_seen(resources, ada, days_ago=31)
    assert await active() == {"total": 2, "activeMonth": 1, "activeHalfyear": 2}
    assert (await client.get("/api/v2/instance")).json()["usage"] == {"users": {"active_month": 1}}
    await _last_seen(resources, bob, days_ago=29)
    await _last_seen(resources, ada, days_ago=181)
    assert await active() == {"total": 2, "activeMonth": 1, "activeHalfyear": 1}
    await _last_seen(resources, bob, days_ago=40)
    assert await active() == {"total": 2, "activeMonth": 0, "activeHalfyear": 1}
    # A refresh is a sign of life: Bob's client keeps his session going.
    refreshed = await client.post(f"{API}/auth/refresh", json={"refresh_token": bob.refresh_token})
    assert refreshed.status_code == 200, refreshed.text
    assert await active() == {"total": 2, "activeMonth": 1, "activeHalfyear": 1}


# --- the instance, versions 1 and 2 ----------------------------------------------------------

VERSION = re.compile(r"^4\.2\.0 \(compatible; Kith " + re.escape(__version__) + r"\)$")


async def test_instance_v1_names_the_version_limits_and_counts(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    await world(client, resources)
    response = await client.get("/api/v1/instance")
    assert response.status_code == 200
    instance = response.json()
    assert VERSION.match(instance["version"])
    assert instance["uri"] == "kith.example"
    assert instance["title"] == "Kith"
    assert instance["urls"] == {"streaming_api": "wss://kith.example"}
    assert instance["stats"] == {"user_count": 2, "status_count": 1, "domain_count": 0}
    assert instance["registrations"] is True
    assert instance["approval_required"] is False
    assert instance["invites_enabled"] is False
    assert instance["contact_account"] is None
    assert instance["rules"] == []
    assert instance["languages"] == ["en"]
    configuration = instance["configuration"]
    assert configuration["statuses"] == {
        "max_characters": 5000,
        "max_media_attachments": 4,
        "characters_reserved_per_url": 23,
    }
    assert configuration["media_attachments"] == {
        "supported_mime_types": MIME_TYPES,
        "image_size_limit": settings.media_max_bytes,
        "image_matrix_limit": settings.media_max_pixels,
        "video_size_limit": 0,
        "video_frame_rate_limit": 0,
        "video_matrix_limit": 0,
    }
    assert configuration["accounts"] == {"max_featured_tags": 0}
    assert configuration["polls"]["max_options"] == 0


async def test_instance_v2_names_the_version_limits_registrations_and_contact(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    await world(client, resources)
    response = await client.get("/api/v2/instance")
    assert response.status_code == 200
    instance = response.json()
    assert VERSION.match(instance["version"])
    assert instance["domain"] == "kith.example"
    assert instance["title"] == "Kith"
    assert instance["usage"] == {"users": {"active_month": 2}}
    assert instance["registrations"] == {"enabled": True, "approval_required": False, "message": None}
    assert instance["contact"] == {"email": "", "account": None}
    assert instance["rules"] == []
    configuration = instance["configuration"]
    assert configuration["urls"] == {"streaming": "wss://kith.example"}
    assert configuration["statuses"]["max_characters"] == 5000
    assert configuration["statuses"]["max_media_attachments"] == 4
    assert configuration["media_attachments"]["supported_mime_types"] == MIME_TYPES
    assert configuration["media_attachments"]["image_size_limit"] == settings.media_max_bytes
    assert configuration["accounts"] == {"max_featured_tags": 0}
    assert configuration["translation"] == {"enabled": False}
    # The thumbnail is the web client's icon, served from this server.
    thumbnail = await client.get(local(instance["thumbnail"]["url"]))
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"].startswith("image/svg+xml")


async def test_the_limits_announced_are_the_ones_the_api_enforces(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    statuses = (await client.get("/api/v2/instance")).json()["configuration"]["statuses"]
    ada = await posting.member(resources, "ada")
    longest = "x" * statuses["max_characters"]
    accepted = await client.post(f"{API}/posts", json={"content": longest}, headers=ada.headers)
    assert accepted.status_code == 201, accepted.text
    refused = await client.post(f"{API}/posts", json={"content": longest + "x"}, headers=ada.headers)
    assert refused.status_code == 422
    media_ids = [await posting.upload(resources, ada) for _ in range(statuses["max_media_attachments"] + 1)]
    too_many = await client.post(f"{API}/posts", json={"media_ids": media_ids}, headers=ada.headers)
    assert too_many.status_code == 422
    enough = await client.post(f"{API}/posts", json={"media_ids": media_ids[:-1]}, headers=ada.headers)
    assert enough.status_code == 201, enough.text


async def test_the_server_describes_itself_as_configured(settings: Settings) -> None:
    configured: FastAPI = create_app(
        settings.model_copy(
            update={
                "instance_title": "Our Kith",
                "instance_description": "Friends of the allotment.",
                "contact_email": "admin@kith.example",
                "public_url": "http://kith.test:8080",
                "media_max_bytes": 2_000_000,
            }
        )
    )
    async with configured.router.lifespan_context(configured):
        transport = httpx.ASGITransport(app=configured)
        async with httpx.AsyncClient(transport=transport, base_url="http://kith.test:8080") as http:
            v1 = (await http.get("/api/v1/instance")).json()
            v2 = (await http.get("/api/v2/instance")).json()
            nodeinfo = (await http.get("/nodeinfo/2.0")).json()
            links = (await http.get("/.well-known/nodeinfo")).json()["links"]
    assert (v1["title"], v1["short_description"], v1["email"]) == (
        "Our Kith",
        "Friends of the allotment.",
        "admin@kith.example",
    )
    assert v1["uri"] == "kith.test"
    assert v1["urls"]["streaming_api"] == "ws://kith.test:8080"
    assert v1["configuration"]["media_attachments"]["image_size_limit"] == 2_000_000
    assert (v2["title"], v2["description"], v2["contact"]["email"]) == (
        "Our Kith",
        "Friends of the allotment.",
        "admin@kith.example",
    )
    assert v2["configuration"]["urls"]["streaming"] == "ws://kith.test:8080"
    assert nodeinfo["metadata"] == {"nodeName": "Our Kith", "nodeDescription": "Friends of the allotment."}
    assert {link["href"] for link in links} == {
        "http://kith.test:8080/nodeinfo/2.0",
        "http://kith.test:8080/nodeinfo/2.1",
    }


# --- what an app fetches at start-up ---------------------------------------------------------

EMPTY_FOR_ANYONE = [
    "/api/v1/custom_emojis",
    "/api/v1/instance/rules",
    "/api/v1/trends",
    "/api/v1/trends/tags",
    "/api/v1/trends/statuses",
    "/api/v1/trends/links",
]
EMPTY_FOR_A_USER: dict[str, object] = {
    "/api/v1/filters": [],
    "/api/v2/filters": [],
    "/api/v1/lists": [],
    "/api/v1/announcements": [],
    "/api/v1/markers": {},
}


@pytest.mark.parametrize("path", EMPTY_FOR_ANYONE)
async def test_public_lists_are_empty_and_need_no_credentials(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize("path", [*EMPTY_FOR_A_USER, "/api/v1/preferences"])
async def test_a_users_lists_need_a_valid_kith_token(
    client: httpx.AsyncClient, resources: Resources, path: str
) -> None:
    missing = await client.get(path)
    assert_mastodon_error(missing, 401, "not_authenticated")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    bad = await client.get(path, headers={"Authorization": "Bearer not-a-token"})
    assert_mastodon_error(bad, 401, "invalid_token")
    ada = await posting.member(resources, "ada")
    await posting.set_suspended(resources, ada)
    assert_mastodon_error(await client.get(path, headers=ada.headers), 401, "invalid_token")


@pytest.mark.parametrize("path", list(EMPTY_FOR_A_USER))
async def test_a_users_lists_are_empty(client: httpx.AsyncClient, resources: Resources, path: str) -> None:
    ada = await posting.member(resources, "ada")
    response = await client.get(path, headers=ada.headers)
    assert response.status_code == 200
    assert response.json() == EMPTY_FOR_A_USER[path]


async def test_preferences_give_kiths_defaults_in_mastodons_words(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await posting.member(resources, "ada")
    response = await client.get("/api/v1/preferences", headers=ada.headers)
    assert response.status_code == 200
    assert response.json() == {
        # A new Kith post is for friends: Mastodon's followers-only.
        "posting:default:visibility": "private",
        "posting:default:sensitive": False,
        "posting:default:language": None,
        "reading:expand:media": "default",
        "reading:expand:spoilers": False,
    }
    # The default it names is the one a post gets when it says none.
    post = await posting.create_post(client, ada, content="no visibility given")
    assert post["visibility"] == "friends"


async def test_mastodons_paths_take_a_trailing_slash_and_kiths_do_not(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """Mastodon.py asks for `/api/v1/instance/` (docs/mastodon.md#conventions)."""
    ada = await posting.member(resources, "ada")
    assert (await client.get("/api/v1/instance/")).json()["uri"] == "kith.example"
    assert (await client.get("/api/v2/instance/")).status_code == 200
    assert (await client.get("/api/v1/preferences/", headers=ada.headers)).status_code == 200
    assert_mastodon_error(await client.get("/api/v1/instance//"), 404, "not_found")
    assert_problem(await client.get(f"{API}/users/me/", headers=ada.headers), 404, "not_found")
