"""OAuth scopes of Mastodon apps (docs/security.md#app-tokens-and-scopes).

Mastodon's vocabulary: four top scopes (`read`, `write`, `follow`, `push`), the sub-scopes
each top scope holds (`read:statuses`, `write:media`, ...), and `profile` (only the
signed-in account). A token granted a top scope may do everything its sub-scopes allow;
`follow` is Mastodon's older name for the blocks, follows and mutes sub-scopes of both
`read` and `write`. The admin scopes are not offered: Kith's staff tools are its own.
"""

from __future__ import annotations

from collections.abc import Iterable

READ_SCOPES = frozenset(
    f"read:{name}"
    for name in (
        "accounts",
        "blocks",
        "bookmarks",
        "favourites",
        "filters",
        "follows",
        "lists",
        "mutes",
        "notifications",
        "search",
        "statuses",
    )
)
WRITE_SCOPES = frozenset(
    f"write:{name}"
    for name in (
        "accounts",
        "blocks",
        "bookmarks",
        "conversations",
        "favourites",
        "filters",
        "follows",
        "lists",
        "media",
        "mutes",
        "notifications",
        "reports",
        "statuses",
    )
)
FOLLOW_SCOPES = frozenset(
    f"{mode}:{name}" for mode in ("read", "write") for name in ("blocks", "follows", "mutes")
)
TOP_SCOPES = ("read", "write", "follow", "push", "profile")
ALL_SCOPES = frozenset(TOP_SCOPES) | READ_SCOPES | WRITE_SCOPES
# What an app gets when it names no scope, as on Mastodon.
DEFAULT_SCOPES = "read"
# The longest scope string kept (the column's size).
MAX_SCOPES_LENGTH = 1000


def parse_scopes(text: str | None) -> list[str] | None:
    """The scopes of a space-separated string (`+` too, as some apps send them), in order,
    without repeats; the default when it names none; None when one is unknown."""
    names = list(dict.fromkeys((text or "").replace("+", " ").split()))
    if not names:
        return [DEFAULT_SCOPES]
    if any(name not in ALL_SCOPES for name in names):
        return None
    return names


def implied(granted: Iterable[str]) -> frozenset[str]:
    """Every scope a set of granted scopes holds, the sub-scopes of its top scopes included."""
    held = set(granted)
    if "read" in held:
        held |= READ_SCOPES
    if "write" in held:
        held |= WRITE_SCOPES
    if "follow" in held:
        held |= FOLLOW_SCOPES
    return frozenset(held)


def allows(granted: Iterable[str], required: str) -> bool:
    """Whether `granted` scopes allow what needs `required` (a top scope or a sub-scope)."""
    # A top scope is held whole or not at all: `read:statuses` alone is not `read`.
    return required in implied(granted)


def within(requested: Iterable[str], registered: Iterable[str]) -> bool:
    """Whether every requested scope is one the app registered (or a sub-scope of one)."""
    held = implied(registered)
    return all(scope in held for scope in requested)
