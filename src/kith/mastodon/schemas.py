"""Response shapes of the Mastodon-compatible API and of NodeInfo, as their documentation
gives them (docs/mastodon.md links each entity)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# --- NodeInfo (https://nodeinfo.diaspora.software/protocol) ----------------------------------


class NodeInfoLink(BaseModel):
    rel: str
    href: str


class NodeInfoDiscovery(BaseModel):
    """The JRD at `/.well-known/nodeinfo`: where each NodeInfo document is."""

    links: list[NodeInfoLink]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class NodeInfoSoftware(_Camel):
    name: str
    version: str
    # 2.1 only: left out of 2.0 documents (None is not sent, see the route).
    repository: str | None = None
    homepage: str | None = None


class NodeInfoServices(_Camel):
    inbound: list[str] = Field(default_factory=list)
    outbound: list[str] = Field(default_factory=list)


class NodeInfoUsers(_Camel):
    total: int
    active_month: int
    active_halfyear: int


class NodeInfoUsage(_Camel):
    users: NodeInfoUsers
    local_posts: int


class NodeInfo(_Camel):
    version: Literal["2.0", "2.1"]
    software: NodeInfoSoftware
    protocols: list[str]
    services: NodeInfoServices
    open_registrations: bool
    usage: NodeInfoUsage
    metadata: dict[str, str]


# --- Instance, versions 1 and 2 (docs.joinmastodon.org/entities/Instance) --------------------


class StatusesConfiguration(BaseModel):
    max_characters: int
    max_media_attachments: int
    characters_reserved_per_url: int


class MediaAttachmentsConfiguration(BaseModel):
    supported_mime_types: list[str]
    image_size_limit: int
    image_matrix_limit: int
    video_size_limit: int
    video_frame_rate_limit: int
    video_matrix_limit: int


class PollsConfiguration(BaseModel):
    max_options: int
    max_characters_per_option: int
    min_expiration: int
    max_expiration: int


class AccountsConfiguration(BaseModel):
    max_featured_tags: int


class Rule(BaseModel):
    id: str
    text: str
    hint: str = ""


class InstanceConfigurationV1(BaseModel):
    accounts: AccountsConfiguration
    statuses: StatusesConfiguration
    media_attachments: MediaAttachmentsConfiguration
    polls: PollsConfiguration


class InstanceUrlsV1(BaseModel):
    streaming_api: str


class InstanceStatsV1(BaseModel):
    user_count: int
    status_count: int
    domain_count: int


class InstanceV1(BaseModel):
    """Mastodon's `V1::Instance`."""

    uri: str
    title: str
    short_description: str
    description: str
    email: str
    version: str
    urls: InstanceUrlsV1
    stats: InstanceStatsV1
    thumbnail: str | None
    languages: list[str]
    registrations: bool
    approval_required: bool
    invites_enabled: bool
    configuration: InstanceConfigurationV1
    contact_account: None
    rules: list[Rule]


class InstanceUrlsV2(BaseModel):
    streaming: str


class Translation(BaseModel):
    enabled: bool


class InstanceConfigurationV2(InstanceConfigurationV1):
    urls: InstanceUrlsV2
    translation: Translation


class UsersUsage(BaseModel):
    active_month: int


class InstanceUsage(BaseModel):
    users: UsersUsage


class Thumbnail(BaseModel):
    url: str


class Registrations(BaseModel):
    enabled: bool
    approval_required: bool
    message: str | None


class Contact(BaseModel):
    email: str
    account: None


class InstanceV2(BaseModel):
    """Mastodon's `Instance` (`GET /api/v2/instance`)."""

    domain: str
    title: str
    version: str
    source_url: str
    description: str
    usage: InstanceUsage
    thumbnail: Thumbnail
    languages: list[str]
    configuration: InstanceConfigurationV2
    registrations: Registrations
    contact: Contact
    rules: list[Rule]


# --- what a signed-in client reads at start-up --------------------------------------------------

MastodonVisibility = Literal["public", "unlisted", "private", "direct"]


class Preferences(BaseModel):
    """Mastodon's `Preferences`: keys with colons in them."""

    model_config = ConfigDict(populate_by_name=True)

    default_visibility: MastodonVisibility = Field(alias="posting:default:visibility")
    default_sensitive: bool = Field(alias="posting:default:sensitive")
    default_language: str | None = Field(alias="posting:default:language")
    expand_media: Literal["default", "show_all", "hide_all"] = Field(alias="reading:expand:media")
    expand_spoilers: bool = Field(alias="reading:expand:spoilers")


# --- apps and OAuth (docs/mastodon.md#apps-and-sign-in) --------------------------------------


class Application(BaseModel):
    """Mastodon's [Application](https://docs.joinmastodon.org/entities/Application/)."""

    id: str
    name: str
    website: str | None
    scopes: list[str]
    # Mastodon's older field: the redirect URIs, one per line.
    redirect_uri: str
    redirect_uris: list[str]


class CreatedApplication(Application):
    """An app as registered: with its client id and, this once, its secret (which never expires)."""

    client_id: str
    client_secret: str
    client_secret_expires_at: int


class OAuthTokenAnswer(BaseModel):
    """The token endpoint's answer (Mastodon's [Token](https://docs.joinmastodon.org/entities/Token/)).

    No `expires_in`: app tokens last until revoked, and Mastodon apps never refresh.
    """

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    scope: str
    created_at: int
    refresh_token: str | None = None


class AuthorizationServer(BaseModel):
    """The OAuth authorization server's metadata (RFC 8414)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str
    app_registration_endpoint: str
    scopes_supported: list[str]
    response_types_supported: list[str]
    response_modes_supported: list[str]
    grant_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    code_challenge_methods_supported: list[str]


# --- accounts (docs/mastodon.md#accounts) -----------------------------------------------------


class AccountSource(BaseModel):
    """What the signed-in user may edit, as they wrote it."""

    privacy: str
    sensitive: bool
    language: str | None
    note: str
    fields: list[dict[str, str]]
    follow_requests_count: int


class Account(BaseModel):
    """Mastodon's [Account](https://docs.joinmastodon.org/entities/Account/)."""

    id: str
    username: str
    acct: str
    display_name: str
    # Every Kith account approves its friends: a follow is a friend request.
    locked: bool = True
    bot: bool = False
    discoverable: bool = False
    indexable: bool = False
    group: bool = False
    created_at: str
    note: str
    url: str
    uri: str
    avatar: str
    avatar_static: str
    header: str
    header_static: str
    followers_count: int
    following_count: int
    statuses_count: int
    last_status_at: str | None = None
    emojis: list[dict[str, str]] = Field(default_factory=list)
    fields: list[dict[str, str]] = Field(default_factory=list)


class CredentialAccount(Account):
    """The signed-in user's own account, with `source`."""

    source: AccountSource


class Relationship(BaseModel):
    """Mastodon's [Relationship](https://docs.joinmastodon.org/entities/Relationship/): how the
    caller stands to an account. A friend is followed and following; a block the other user
    made is never told (`blocked_by` is always false: such an account is not found at all)."""

    id: str
    following: bool
    showing_reblogs: bool
    notifying: bool = False
    languages: list[str] | None = None
    followed_by: bool
    blocking: bool
    blocked_by: bool = False
    muting: bool = False
    muting_notifications: bool = False
    requested: bool
    requested_by: bool
    domain_blocking: bool = False
    endorsed: bool = False
    note: str = ""


class SearchResults(BaseModel):
    """Mastodon's [Search](https://docs.joinmastodon.org/entities/Search/): Kith finds accounts."""

    accounts: list[Account]
    statuses: list[dict[str, object]] = Field(default_factory=list)
    hashtags: list[dict[str, object]] = Field(default_factory=list)
