"""Ids and dates as Mastodon apps expect them (docs/mastodon.md#ids-and-dates).

Mastodon's ids are strings of digits that sort by creation time, and many apps order
statuses and notifications by comparing them. A Kith id is a UUIDv7, whose 128 bits start
with the creation time in milliseconds: its decimal value is such a string. Every id made
between March 1996 and 2232 has 37 digits, so comparing the strings (as text, or by length then
text, as apps do) orders them as the numbers, by time.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

# 2^128 has 39 digits; nothing longer can be a Kith id.
_MAX_DIGITS = 39


def to_mastodon_id(kith_id: str) -> str:
    """A Kith id (a UUID in its text form) as Mastodon's string of digits."""
    return str(uuid.UUID(kith_id).int)


def from_mastodon_id(value: str) -> str | None:
    """The Kith id a Mastodon id stands for; None when `value` cannot be one (the route
    answers 404 then, as for an id that names nothing)."""
    if not value.isascii() or not value.isdigit() or len(value) > _MAX_DIGITS:
        return None
    number = int(value)
    if number >= 1 << 128:
        return None
    return str(uuid.UUID(int=number))


def mastodon_datetime(moment: datetime) -> str:
    """A time as Mastodon writes it: UTC, milliseconds, `Z` (`2026-12-05T03:45:00.123Z`)."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def mastodon_date(moment: datetime) -> str:
    """A day as Mastodon writes it (an account's `last_status_at`): `2026-12-05`."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment
    return utc.strftime("%Y-%m-%d")
