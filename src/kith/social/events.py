"""What the social domain announces (`kith.runtime.events`); the feed subscribes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FriendshipStarted:
    """Two users became friends."""

    user_ids: tuple[str, str]
