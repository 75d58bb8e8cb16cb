"""Base classes for request and response bodies."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    StringConstraints,
    field_validator,
)
from pydantic.config import JsonDict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


def _rfc3339(value: datetime) -> str:
    if value.tzinfo is not UTC:  # the database drivers' timestamps are UTC already
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" -> "Z"


# The pattern of a string that may hold anything but NUL (U+0000): PostgreSQL can neither
# store nor compare it, so no request string may carry one.
NO_NUL = r"^[^\x00]*$"

# Timestamps leave the API as RFC 3339 in UTC with a `Z` suffix.
Timestamp = Annotated[datetime, PlainSerializer(_rfc3339, return_type=str)]


def _text_only(value: object) -> object:
    # Pydantic would read a number as seconds since the epoch; the schema says date-time text.
    if not isinstance(value, str | datetime):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


# A timestamp in a request body: RFC 3339 text only, as the OpenAPI description says.
TimestampInput = Annotated[datetime, BeforeValidator(_text_only)]

# Passwords are taken exactly as typed: never trimmed (NIST SP 800-63B). `format: password`
# marks them in the OpenAPI description (and keeps them out of `_describe_trimming`).
PasswordInput = Annotated[
    str,
    StringConstraints(strip_whitespace=False, max_length=1024),
    Field(json_schema_extra={"format": "password", "pattern": NO_NUL}),
]
Password = Annotated[
    str,
    StringConstraints(strip_whitespace=False, min_length=8, max_length=128),
    Field(
        description="8 to 128 characters, taken exactly as typed. Refused when it is a common "
        "password or equals the username, the e-mail address or its local part.",
        # OpenAPI's own format for secrets; it also tells tools the policy above applies.
        json_schema_extra={"format": "password", "pattern": NO_NUL},
    ),
]


# --- what trimming means for the OpenAPI description ---------------------------------------
#
# Request strings are trimmed before their limits are checked (docs/api.md#conventions), so a schema
# that says `maxLength: 50` is wrong both ways for " Ada " padded past 50 characters. The
# JSON Schema of every request model therefore carries its string limits in a pattern:
# whatever trimming removes, around a core of the allowed length. Text fields add their
# character rules with `TEXT_RULE` (the validators `no_control_characters` and
# `single_line` give the error messages).

TEXT_RULE = "x-kith-text"
LINE, MULTILINE = "line", "multiline"
# Unicode Cc: all of it for one line of text, all but tab and newline for longer text.
# Any other string may hold anything but NUL, which PostgreSQL cannot store or compare.
# Names (one line) also refuse the bidirectional embeddings, overrides and isolates
# (U+202A-U+202E, U+2066-U+2069), which can make a name read as another.
BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
_CONTROLS = {
    LINE: r"\x00-\x1f\x7f-\x9f" + BIDI_CONTROLS,
    MULTILINE: r"\x00-\x08\x0b-\x1f\x7f-\x9f",
    None: r"\x00",
}
# Characters that show nothing (format characters, fillers, variation selectors): a name may
# hold them inside, but not begin or end with one, so no name is made of them alone.
INVISIBLE = (
    "\u00ad\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2060-\u2064"
    "\u206a-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0"
)
_EDGE_EXTRA: dict[str | None, str] = {LINE: INVISIBLE}
# What trimming removes: Unicode White_Space (pydantic-core trims with Rust's `str::trim`).
SPACES = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_SINGLE_CLASS = re.compile(r"^\^\[([^\]]+)\]\+\$$")


def _repeat(item: str, low: int, high: int | None) -> str:
    return f"{item}{{{max(low, 0)},{'' if high is None else max(high, 0)}}}"


def trimmed_pattern(
    min_length: int, max_length: int | None, *, rule: str | None = None, char_class: str | None = None
) -> str:
    """The pattern of a string that is trimmed, then checked for length (and `rule`, or for
    consisting of `char_class` only)."""
    spaces = f"[{SPACES}]*"
    if char_class is not None:
        return f"^{spaces}{_repeat(f'[{char_class}]', min_length, max_length)}{spaces}$"
    controls = _CONTROLS[rule]
    inner = f"[^{controls}]"
    edge = f"[^{controls}{SPACES}{_EDGE_EXTRA.get(rule, '')}]"
    if max_length == 0:
        return f"^{spaces}$"
    if max_length == 1:
        core = edge
    elif min_length >= 2:
        core = f"{edge}{_repeat(inner, min_length - 2, None if max_length is None else max_length - 2)}{edge}"
    else:
        core = f"{edge}(?:{_repeat(inner, 0, None if max_length is None else max_length - 2)}{edge})?"
    return f"^{spaces}{core if min_length >= 1 else f'(?:{core})?'}{spaces}$"


def _describe_trimming(schema: Any) -> None:
    """Rewrite the string limits inside a request model's JSON Schema as trimmed patterns."""
    if isinstance(schema, list):
        for item in schema:
            _describe_trimming(item)
        return
    if not isinstance(schema, dict):
        return
    rule = schema.pop(TEXT_RULE, None)
    if schema.get("type") == "string" and "format" not in schema:
        limits = "minLength" in schema or "maxLength" in schema or rule is not None
        existing = schema.get("pattern")
        single = _SINGLE_CLASS.match(existing) if isinstance(existing, str) else None
        if limits and (existing is None or single):
            schema["pattern"] = trimmed_pattern(
                schema.pop("minLength", 0),
                schema.pop("maxLength", None),
                rule=rule,
                char_class=single.group(1) if single else None,
            )
    for key in ("properties", "$defs", "patternProperties"):
        if isinstance(schema.get(key), dict):
            for value in schema[key].values():
                _describe_trimming(value)
    for key in ("items", "anyOf", "oneOf", "allOf", "not", "prefixItems"):
        if key in schema:
            _describe_trimming(schema[key])


def given(field: str, schema: JsonDict | None = None) -> JsonDict:
    """A JSON Schema branch: `field` is present and matches `schema` (by default: not null)."""
    return {"required": [field], "properties": {field: schema or {"not": {"type": "null"}}}}


def at_least_one_of(*fields: str) -> JsonDict:
    """Model-level JSON Schema for "give at least one of these fields, not as null"."""
    return {"anyOf": [given(field) for field in fields]}


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    return False


class RequestModel(BaseModel):
    """A request body: unknown fields are refused (no mass assignment), strings trimmed,
    and no string holds NUL (U+0000), which PostgreSQL can neither store nor compare."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if _holds_nul(value):
            raise ValueError("must not contain NUL characters (U+0000)")
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        _describe_trimming(handler.resolve_ref_schema(schema))
        return schema


class ResponseModel(BaseModel):
    """A response body, built from ORM objects or dicts."""

    model_config = ConfigDict(from_attributes=True)
