from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from kith.auth.password_policy import password_problem
from kith.core.schemas import NO_NUL, Password, PasswordInput, RequestModel, ResponseModel, given
from kith.users.schemas import DisplayNameText

Username = Annotated[
    str,
    StringConstraints(min_length=3, max_length=30, pattern=r"^[A-Za-z0-9_]+$"),
    Field(examples=["ada_l"], description="3–30 characters: letters, digits, underscore."),
]
Email = Annotated[
    EmailStr,
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

    @model_validator(mode="after")
    def _password_rules(self) -> Self:
        _check_password(self.password, self.username, self.email)
        return self


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
