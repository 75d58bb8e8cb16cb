"""What the Mastodon-compatible API and NodeInfo say about this server, built from Kith's own
settings, limits and counts (docs/mastodon.md). Every limit named here is the constant or
setting the domain that enforces it reads; nothing is decided twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from kith import __version__
from kith.auth import service as auth
from kith.core.config import Settings
from kith.db.models import Visibility
from kith.mastodon.schemas import (
    AccountsConfiguration,
    Contact,
    InstanceConfigurationV1,
    InstanceConfigurationV2,
    InstanceStatsV1,
    InstanceUrlsV1,
    InstanceUrlsV2,
    InstanceUsage,
    InstanceV1,
    InstanceV2,
    MastodonVisibility,
    MediaAttachmentsConfiguration,
    NodeInfo,
    NodeInfoServices,
    NodeInfoSoftware,
    NodeInfoUsage,
    NodeInfoUsers,
    PollsConfiguration,
    Preferences,
    Registrations,
    StatusesConfiguration,
    Thumbnail,
    Translation,
    UsersUsage,
)
from kith.media.storage import CONTENT_TYPES
from kith.posts import service as posts
from kith.posts.schemas import DEFAULT_VISIBILITY, MAX_MEDIA_PER_POST, MAX_POST_LENGTH
from kith.users import service as users

# The Mastodon API version Kith's answers follow, and the version string apps parse for it:
# "<Mastodon version> (compatible; <software> <version>)", as other compatible servers write it.
MASTODON_API_VERSION = "4.2.0"
VERSION = f"{MASTODON_API_VERSION} (compatible; Kith {__version__})"
SOFTWARE_NAME = "kith"
# Mastodon counts each link in a post as this many characters; Kith counts a link's own
# characters, so a post full of long links can still pass this limit (docs/mastodon.md).
CHARACTERS_RESERVED_PER_URL = 23
LANGUAGES = ["en"]  # the language of the web client and of the e-mails

# Kith's visibilities in Mastodon's words: `friends` is Mastodon's followers-only (`private`),
# Kith's `private` (the author alone) is a direct post to nobody.
MASTODON_VISIBILITY: dict[Visibility, MastodonVisibility] = {
    Visibility.public: "public",
    Visibility.friends: "private",
    Visibility.private: "direct",
}

NODEINFO_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/"
NODEINFO_VERSIONS = ("2.0", "2.1")


@dataclass(frozen=True)
class Usage:
    """The server's counts, as NodeInfo and the instance description give them."""

    users: int
    active_month: int
    active_halfyear: int
    posts: int


async def usage(session: AsyncSession, *, now: datetime) -> Usage:
    """How many accounts and posts the server has, and how many accounts were used lately."""
    return Usage(
        users=await users.member_count(session),
        active_month=await auth.active_user_count(session, since=now - timedelta(days=30)),
        active_halfyear=await auth.active_user_count(session, since=now - timedelta(days=180)),
        posts=await posts.post_count(session),
    )


def domain(settings: Settings) -> str:
    """The server's host name, from its public URL (never from a request's `Host`)."""
    return urlsplit(settings.public_url).hostname or ""


def streaming_url(settings: Settings) -> str:
    """The WebSocket origin Mastodon apps open their streams on (`wss://` for `https://`)."""
    parts = urlsplit(settings.public_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}"


def _statuses() -> StatusesConfiguration:
    return StatusesConfiguration(
        max_characters=MAX_POST_LENGTH,
        max_media_attachments=MAX_MEDIA_PER_POST,
        characters_reserved_per_url=CHARACTERS_RESERVED_PER_URL,
    )


def _media_attachments(settings: Settings) -> MediaAttachmentsConfiguration:
    # Images only: no video is accepted, so its limits are 0.
    return MediaAttachmentsConfiguration(
        supported_mime_types=sorted(set(CONTENT_TYPES.values())),
        image_size_limit=settings.media_max_bytes,
        image_matrix_limit=settings.media_max_pixels,
        video_size_limit=0,
        video_frame_rate_limit=0,
        video_matrix_limit=0,
    )


def _configuration_v1(settings: Settings) -> InstanceConfigurationV1:
    # Kith has no polls and no featured tags: their limits are 0.
    return InstanceConfigurationV1(
        accounts=AccountsConfiguration(max_featured_tags=0),
        statuses=_statuses(),
        media_attachments=_media_attachments(settings),
        polls=PollsConfiguration(
            max_options=0, max_characters_per_option=0, min_expiration=0, max_expiration=0
        ),
    )


def instance_v1(settings: Settings, counts: Usage) -> InstanceV1:
    """`GET /api/v1/instance`: Mastodon's older description of a server."""
    return InstanceV1(
        uri=domain(settings),
        title=settings.instance_title,
        short_description=settings.instance_description,
        description=settings.instance_description,
        email=settings.contact_email,
        version=VERSION,
        urls=InstanceUrlsV1(streaming_api=streaming_url(settings)),
        # Kith does not federate: it knows no other domain.
        stats=InstanceStatsV1(user_count=counts.users, status_count=counts.posts, domain_count=0),
        thumbnail=None,
        languages=LANGUAGES,
        # Anyone may register (docs/api.md#accounts-and-authentication); no approval, no invites.
        registrations=True,
        approval_required=False,
        invites_enabled=False,
        configuration=_configuration_v1(settings),
        contact_account=None,
        rules=[],
    )


def instance_v2(settings: Settings, counts: Usage, thumbnail_url: str) -> InstanceV2:
    """`GET /api/v2/instance`: Mastodon's current description of a server."""
    return InstanceV2(
        domain=domain(settings),
        title=settings.instance_title,
        version=VERSION,
        source_url="",
        description=settings.instance_description,
        usage=InstanceUsage(users=UsersUsage(active_month=counts.active_month)),
        thumbnail=Thumbnail(url=thumbnail_url),
        languages=LANGUAGES,
        configuration=InstanceConfigurationV2(
            **_configuration_v1(settings).model_dump(),
            urls=InstanceUrlsV2(streaming=streaming_url(settings)),
            translation=Translation(enabled=False),
        ),
        registrations=Registrations(enabled=True, approval_required=False, message=None),
        contact=Contact(email=settings.contact_email, account=None),
        rules=[],
    )


def nodeinfo(version: str, settings: Settings, counts: Usage) -> NodeInfo:
    """The NodeInfo document of schema `version` (2.0 or 2.1)."""
    software = NodeInfoSoftware(name=SOFTWARE_NAME, version=__version__)
    return NodeInfo(
        version="2.1" if version == "2.1" else "2.0",
        software=software,
        # Kith speaks no federation protocol (ActivityPub or other): it claims none.
        protocols=[],
        services=NodeInfoServices(),
        open_registrations=True,
        usage=NodeInfoUsage(
            users=NodeInfoUsers(
                total=counts.users, active_month=counts.active_month, active_halfyear=counts.active_halfyear
            ),
            local_posts=counts.posts,
        ),
        metadata={"nodeName": settings.instance_title, "nodeDescription": settings.instance_description},
    )


def preferences() -> Preferences:
    """A user's posting and reading defaults. Kith keeps none per user yet: these are the
    server's own (a new post's visibility is Kith's default)."""
    return Preferences(
        default_visibility=MASTODON_VISIBILITY[DEFAULT_VISIBILITY],
        default_sensitive=False,
        default_language=None,
        expand_media="default",
        expand_spoilers=False,
    )
