"""What the posts domain announces (`kith.runtime.events`); the feed and the
Mastodon-compatible streams subscribe."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PostPublished:
    """A new post (`new`), or one whose audience changed to `visibility`."""

    post_id: str
    author_id: str
    visibility: str
    new: bool = True


@dataclass(frozen=True)
class PostRemoved:
    """A post deleted, by its author or by staff; `visibility` is what it had."""

    post_id: str
    author_id: str
    visibility: str
