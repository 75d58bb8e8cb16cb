"""Base classes for request and response bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StringConstraints
from pydantic.config import JsonDict


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Timestamps leave the API as RFC 3339 in UTC with a `Z` suffix.
Timestamp = Annotated[datetime, PlainSerializer(_rfc3339, return_type=str)]


def _text_only(value: object) -> object:
    # Pydantic would read a number as seconds since the epoch; the schema says date-time text.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


# A timestamp in a request body: RFC 3339 text only, as the OpenAPI description says.
TimestampInput = Annotated[datetime, BeforeValidator(_text_only)]

# Passwords are taken exactly as typed: never trimmed (NIST SP 800-63B).
Password = Annotated[
    str,
    StringConstraints(strip_whitespace=False, min_length=8, max_length=128),
    Field(
        description="8 to 128 characters, taken exactly as typed. Refused when it is a common "
        "password or equals the username, the e-mail address or its local part.",
        # OpenAPI's own format for secrets; it also tells tools the policy above applies.
        json_schema_extra={"format": "password"},
    ),
]


# JSON Schema patterns that put the rules of trimmed text fields into the OpenAPI
# description; the validators (`no_control_characters`, `single_line`) give the messages.
_CONTROLS = r"\x00-\x08\x0b-\x1f\x7f-\x9f"  # Unicode Cc, except tab and newline
_LINE_CONTROLS = r"\x00-\x1f\x7f-\x9f"  # Unicode Cc
# What trimming removes: Unicode White_Space (pydantic-core trims with Rust's `str::trim`).
_SPACES = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def text_pattern(*, multiline: bool, required: bool) -> str:
    """The pattern of a trimmed text field: whatever trimming removes around a core that
    has no control characters (but tab and newline when `multiline`) and, when
    `required`, is not empty."""
    controls = _CONTROLS if multiline else _LINE_CONTROLS
    edge = f"[^{controls}{_SPACES}]"
    core = f"{edge}(?:[^{controls}]*{edge})?"
    return f"^[{_SPACES}]*{core if required else f'(?:{core})?'}[{_SPACES}]*$"


def given(field: str, schema: JsonDict | None = None) -> JsonDict:
    """A JSON Schema branch: `field` is present and matches `schema` (by default: not null)."""
    return {"required": [field], "properties": {field: schema or {"not": {"type": "null"}}}}


def at_least_one_of(*fields: str) -> JsonDict:
    """Model-level JSON Schema for "give at least one of these fields, not as null"."""
    return {"anyOf": [given(field) for field in fields]}


class RequestModel(BaseModel):
    """A request body: unknown fields are refused (no mass assignment), strings trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    """A response body, built from ORM objects or dicts."""

    model_config = ConfigDict(from_attributes=True)
