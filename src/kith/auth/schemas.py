from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)

from kith.auth.password_policy import password_problem
from kith.core.mail import normalize_address
from kith.core.schemas import (
    BIDI_CONTROLS,
    INVISIBLE,
    LINE,
    NO_NUL,
    TEXT_RULE,
    Password,
    PasswordInput,
    RequestModel,
    ResponseModel,
    Timestamp,
    given,
)
from kith.core.urls import media_url
from kith.db.models import Role

# --- how an account is shown: to everyone in lists, and to its owner ---------------------


def no_control_characters(value: str) -> str:
    # Unicode category Cc: C0 controls, DEL and the C1 controls (U+0080-U+009F, where
    # U+009B is a terminal's CSI, as dangerous in a log or a console as ESC).
    if any(unicodedata.category(char) == "Cc" and char not in "\n\t" for char in value):
        raise ValueError("must not contain control characters")
    return value


_BIDI = re.compile(f"[{BIDI_CONTROLS}]")
_INVISIBLE = re.compile(f"[{INVISIBLE}]")


def no_bidi_controls(value: str) -> str:
    if _BIDI.search(value):
        raise ValueError("must not contain bidirectional embedding, override or isolate characters")
    return value


def visible_edges(value: str) -> str:
    if value and (_INVISIBLE.fullmatch(value[0]) or _INVISIBLE.fullmatch(value[-1])):
        raise ValueError("must not begin or end with an invisible character")
    return value


def single_line(value: str) -> str:
    if "\n" in value or "\t" in value:
        raise ValueError("must be a single line")
    return value


DisplayNameText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=50),
    AfterValidator(no_control_characters),
    AfterValidator(single_line),
    AfterValidator(no_bidi_controls),
    AfterValidator(visible_edges),
    Field(examples=["Ada Lovelace"], json_schema_extra={TEXT_RULE: LINE}),
]


class UserSummary(ResponseModel):
    """A user as shown beside their posts, comments and requests."""

    id: str
    username: str
    display_name: str
    avatar_key: str | None = Field(default=None, exclude=True)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def avatar_url(self) -> str | None:
        return media_url(self.avatar_key)


class PublicUser(UserSummary):
    """What any signed-in user may see of another."""

    bio: str
    created_at: Timestamp


class PrivateUser(PublicUser):
    """The account owner's own view."""

    email: str
    email_verified: bool
    role: Role


Username = Annotated[
    str,
    StringConstraints(min_length=3, max_length=30, pattern=r"^[A-Za-z0-9_]+$"),
    Field(examples=["ada_l"], description="3–30 characters: letters, digits, underscore."),
]
Email = Annotated[
    EmailStr,
    # Before the address is validated, so that it is checked (and stored) in its one spelling.
    BeforeValidator(lambda value: normalize_address(value) if isinstance(value, str) else value),
    AfterValidator(str.lower),
    Field(
        examples=["ada@example.com"],
        description="An address that can receive mail: special-use domains (RFC 6761: `.test`, "
        "`.invalid`, `.localhost`, `.local`, `.onion`, `.arpa`) are refused, and so is a domain "
        "label with `--` as its third and fourth characters that is not valid Punycode (RFC 5891).",
    ),
]


def _check_password(password: str, username: str | None, email: str | None) -> None:
    problem = password_problem(password, username=username, email=email)
    if problem:
        raise ValueError(problem)


class RegisterRequest(RequestModel):
    username: Username
    email: Email
    password: Password = Field(examples=["correct horse battery staple"])
    # The same rules as a profile edit: one line, no control characters.
    display_name: DisplayNameText | None = None

    @field_validator("password")
    @classmethod
    def _password_rules(cls, password: str, info: ValidationInfo) -> str:
        # A field validator, so the error names `body.password`; username and e-mail are
        # validated before it (they come first), and are absent here when they were invalid.
        _check_password(password, info.data.get("username"), info.data.get("email"))
        return password


class LoginRequest(RequestModel):
    """Log in with either `email` or `username`, and the password."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [given("email"), given("username")]})

    email: Annotated[str, StringConstraints(max_length=254)] | None = Field(
        default=None, examples=["ada@example.com"]
    )
    username: Annotated[str, StringConstraints(max_length=254)] | None = None
    password: PasswordInput = Field(examples=["correct horse battery staple"])

    @model_validator(mode="after")
    def _one_identifier(self) -> Self:
        if (self.email is None) == (self.username is None):
            raise ValueError("give exactly one of `email` or `username`")
        return self

    @property
    def identifier(self) -> str:
        return self.email or self.username or ""


class TokenPair(ResponseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.", examples=[900])
    refresh_token: str


class AccessToken(ResponseModel):
    """An access token alone: its refresh token travels in an HttpOnly cookie (the web client)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.", examples=[900])


class LoginSessionView(ResponseModel):
    """One live login of the account (a device or browser that logged in)."""

    id: str
    created_at: Timestamp
    expires_at: Timestamp
    user_agent: str | None = Field(description="The `User-Agent` the login came with, if any.")
    current: bool = Field(description="Whether this is the session of the access token that asked.")


class RefreshRequest(RequestModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=512)]


class TokenRequest(RequestModel):
    token: Annotated[str, StringConstraints(min_length=1, max_length=512)]


class PasswordResetRequest(RequestModel):
    email: Email


class PasswordResetConfirm(RequestModel):
    token: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    new_password: Password


class PasswordGrantForm(BaseModel):
    """The OAuth2 password grant (RFC 6749 §4.3) as `POST /auth/token` reads it.

    Unlike FastAPI's `OAuth2PasswordRequestForm`, it refuses fields it does not declare,
    like every JSON body (no mass assignment), and its description says what the server
    accepts: fields are never blank (an empty field counts as missing: 422) and, like
    every string Kith takes, never hold NUL. Nothing is trimmed: the password is taken
    exactly as typed.
    """

    model_config = ConfigDict(extra="forbid")

    username: Annotated[str, StringConstraints(min_length=1, max_length=254, pattern=NO_NUL)] = Field(
        description="A username or an e-mail address."
    )
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=NO_NUL)] = Field(
        json_schema_extra={"format": "password"}
    )
    grant_type: Literal["password"] | None = None
    scope: Annotated[str, StringConstraints(max_length=1024, pattern=NO_NUL)] = ""
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=254, pattern=NO_NUL)] | None = None
    client_secret: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=NO_NUL)] | None = (
        Field(default=None, json_schema_extra={"format": "password"})
    )
