"""Routes of the Mastodon-compatible API's discovery and of NodeInfo (docs/mastodon.md).

Mastodon apps find them on the server's origin, at Mastodon's own paths, so they are
included without Kith's API prefix. They are described by Mastodon's documentation and
docs/mastodon.md, not by Kith's OpenAPI document, which a generated Kith client reads.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from kith.auth.dependencies import MastodonUser, require_scope
from kith.core.urls import absolute_url
from kith.db.models import User
from kith.http.deps import AppSettings, Now
from kith.http.session import DbSession
from kith.mastodon import service
from kith.mastodon.schemas import InstanceV1, InstanceV2, NodeInfoDiscovery, NodeInfoLink, Preferences, Rule
from kith.web.assets import KITH

router = APIRouter(include_in_schema=False)

NODEINFO_PATH = "/nodeinfo/"
# Lists a client fetches at start-up, of things Kith does not have (yet): always empty.
EmptyList = list[dict[str, object]]
# The caller of a route that needs a scope (docs/security.md#app-tokens-and-scopes).
AccountsReader = Annotated[User, Depends(require_scope("read:accounts"))]
FiltersReader = Annotated[User, Depends(require_scope("read:filters"))]
ListsReader = Annotated[User, Depends(require_scope("read:lists"))]
StatusesReader = Annotated[User, Depends(require_scope("read:statuses"))]


@router.get("/.well-known/nodeinfo")
async def nodeinfo_discovery() -> NodeInfoDiscovery:
    """Where the NodeInfo documents are, one link per schema version."""
    return NodeInfoDiscovery(
        links=[
            NodeInfoLink(rel=service.NODEINFO_SCHEMA + version, href=absolute_url(NODEINFO_PATH + version))
            for version in service.NODEINFO_VERSIONS
        ]
    )


async def _nodeinfo(version: str, session: DbSession, settings: AppSettings, now: Now) -> Response:
    document = service.nodeinfo(version, settings, await service.usage(session, now=now))
    return Response(
        document.model_dump_json(by_alias=True, exclude_none=True),
        media_type=f'application/json; profile="{service.NODEINFO_SCHEMA}{version}#"',
    )


@router.get(NODEINFO_PATH + "2.0")
async def nodeinfo_2_0(session: DbSession, settings: AppSettings, now: Now) -> Response:
    """The server's NodeInfo, schema 2.0."""
    return await _nodeinfo("2.0", session, settings, now)


@router.get(NODEINFO_PATH + "2.1")
async def nodeinfo_2_1(session: DbSession, settings: AppSettings, now: Now) -> Response:
    """The server's NodeInfo, schema 2.1."""
    return await _nodeinfo("2.1", session, settings, now)


@router.get("/api/v1/instance")
async def instance_v1(session: DbSession, settings: AppSettings, now: Now) -> InstanceV1:
    """The server as Mastodon 3.x apps read it: name, version, limits, counts."""
    return service.instance_v1(settings, await service.usage(session, now=now))


@router.get("/api/v2/instance")
async def instance_v2(session: DbSession, settings: AppSettings, now: Now) -> InstanceV2:
    """The server as Mastodon 4 apps read it: name, version, limits, registrations, contact."""
    thumbnail = absolute_url(f"{KITH.base}/icon.svg")
    return service.instance_v2(settings, await service.usage(session, now=now), thumbnail)


@router.get("/api/v1/instance/rules")
async def instance_rules() -> list[Rule]:
    """The server's rules: Kith has none to list."""
    return []


@router.get("/api/v1/custom_emojis")
async def custom_emojis() -> EmptyList:
    """Custom emoji: Kith has none."""
    return []


@router.get("/api/v1/trends")
@router.get("/api/v1/trends/tags")
@router.get("/api/v1/trends/statuses")
@router.get("/api/v1/trends/links")
async def trends() -> EmptyList:
    """Trending tags, posts and links: Kith computes none."""
    return []


@router.get("/api/v1/announcements")
async def announcements(user: MastodonUser) -> EmptyList:
    """Announcements of the server's staff: Kith has none (yet)."""
    return []


@router.get("/api/v1/filters")
@router.get("/api/v2/filters")
async def filters(user: FiltersReader) -> EmptyList:
    """The caller's keyword filters, both versions: Kith has none (yet)."""
    return []


@router.get("/api/v1/lists")
async def lists(user: ListsReader) -> EmptyList:
    """The caller's lists: Kith has none (yet)."""
    return []


@router.get("/api/v1/markers")
async def markers(user: StatusesReader) -> dict[str, object]:
    """The caller's saved reading positions, by timeline: none are kept (yet)."""
    return {}


@router.get("/api/v1/preferences")
async def preferences(user: AccountsReader) -> Preferences:
    """The caller's posting and reading defaults."""
    return service.preferences()
