"""What the social domain announces (`kith.runtime.events`); the feed and the
Mastodon-compatible streams subscribe."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FriendshipStarted:
    """Two users became friends."""

    user_ids: tuple[str, str]


@dataclass(frozen=True)
class FriendshipEnded:
    """Two users are friends no more: one unfriended the other, or blocked them."""

    user_ids: tuple[str, str]
