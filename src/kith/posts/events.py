"""What the posts domain announces (`kith.runtime.events`); the feed subscribes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PostPublished:
    """A new post, or one whose audience changed."""

    post_id: str
    author_id: str
