from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from kith.auth.schemas import (
    DisplayNameText,
    LoginSessionView,
    PublicUser,
    no_bidi_controls,
    no_control_characters,
    single_line,
    visible_edges,
)
from kith.core.schemas import (
    LINE,
    MULTILINE,
    TEXT_RULE,
    Password,
    PasswordInput,
    RequestModel,
    ResponseModel,
    Timestamp,
    TimestampInput,
)
from kith.db.models import User
from kith.social.relations import Relationship

BioText = Annotated[
    str,
    StringConstraints(max_length=500),
    AfterValidator(no_control_characters),
    Field(
        examples=["Mathematician. Writes notes longer than the paper they annotate."],
        json_schema_extra={TEXT_RULE: MULTILINE},
    ),
]
# API key names are listed like display names, and follow the same rules.
KeyName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100),
    AfterValidator(no_control_characters),
    AfterValidator(single_line),
    AfterValidator(no_bidi_controls),
    AfterValidator(visible_edges),
    Field(
        examples=["backup script"],
        json_schema_extra={TEXT_RULE: LINE},
    ),
]


class UserProfile(PublicUser):
    """A user's public profile, as the caller sees it."""

    friend_count: int = Field(description="Friends of the user that the caller can see.")
    post_count: int = Field(description="Posts by the user that the caller may read.")
    relationship: Relationship = Field(
        description="The caller's relation to the user: `self`, `none`, `friends`, "
        "`request_sent` (the caller's request is pending) or `request_received`."
    )

    @classmethod
    def of(cls, user: User, *, friend_count: int, post_count: int, relationship: Relationship) -> UserProfile:
        fields = {name: getattr(user, name) for name in PublicUser.model_fields}
        return cls.model_validate(
            {**fields, "friend_count": friend_count, "post_count": post_count, "relationship": relationship}
        )


class ProfileUpdate(RequestModel):
    display_name: DisplayNameText | None = None
    bio: BioText | None = None
    avatar_media_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="The `id` of one of your own uploads not attached to a post; `null` removes the avatar.",
    )


class PasswordChange(RequestModel):
    current_password: PasswordInput
    new_password: Password


class AccountDeletion(RequestModel):
    password: PasswordInput


Scope = Literal["read", "write"]


class ApiKeyCreate(RequestModel):
    name: KeyName
    scopes: list[Scope] = Field(
        default_factory=lambda: list[Scope](["read"]),
        description='`["read"]` or `["read", "write"]`.',
        examples=[["read"]],
        json_schema_extra={"contains": {"const": "read"}},
    )
    expires_at: TimestampInput | None = Field(default=None, description="Optional expiry (RFC 3339).")

    @model_validator(mode="after")
    def _valid_scopes(self) -> Self:
        scopes = set(self.scopes)
        if "read" not in scopes:
            raise ValueError('scopes must include "read"')
        self.scopes = [scope for scope in ("read", "write") if scope in scopes]
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expires_at must carry a time zone")
        return self


class ApiKeyView(ResponseModel):
    id: str
    name: str
    prefix: str = Field(description="The first characters of the key, to recognise it.")
    scopes: list[str] = Field(validation_alias="scope_list")
    created_at: Timestamp
    expires_at: Timestamp | None
    last_used_at: Timestamp | None


class CreatedApiKey(ApiKeyView):
    key: str | None = Field(
        description="The secret key. Shown only in this response; store it now. Null when an "
        "`Idempotency-Key` retry replays the answer: the secret is never stored, so it cannot "
        "be shown again (delete the key and make another if it was lost)."
    )


class LoginSessionList(ResponseModel):
    """The account's live login sessions, newest first (at most 100)."""

    items: list[LoginSessionView]


class AuthorizedApp(ResponseModel):
    """The app an authorization was given to, as it registered itself."""

    name: str
    website: str | None


class AuthorizationView(ResponseModel):
    """An app the user authorized (a Mastodon app's token, docs/mastodon.md#apps-and-sign-in)."""

    id: str
    app: AuthorizedApp
    scopes: list[str] = Field(description="What the app may do: Mastodon's scopes, as granted.")
    created_at: Timestamp
    last_used_at: Timestamp | None = Field(description="About when the app last used it (to the minute).")


class AuthorizationList(ResponseModel):
    """The apps the account authorized, newest first (at most 100)."""

    items: list[AuthorizationView]
