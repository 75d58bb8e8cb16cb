"""Base classes for request and response bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer, StringConstraints


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Timestamps leave the API as RFC 3339 in UTC with a `Z` suffix.
Timestamp = Annotated[datetime, PlainSerializer(_rfc3339, return_type=str)]

# Passwords are taken exactly as typed: never trimmed (NIST SP 800-63B).
Password = Annotated[str, StringConstraints(strip_whitespace=False, min_length=8, max_length=128)]


class RequestModel(BaseModel):
    """A request body: unknown fields are refused (no mass assignment), strings trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResponseModel(BaseModel):
    """A response body, built from ORM objects or dicts."""

    model_config = ConfigDict(from_attributes=True)
