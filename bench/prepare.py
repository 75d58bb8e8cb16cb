"""What the load needs before it starts: tokens, readable posts, deep cursors, fresh friend pairs.

Sessions are opened straight in the database with Kith's own `start_session` (the
server shares the secret key), so preparing thousands of tokens costs no password
hashing; everything else is read through the HTTP API, as a client would.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import or_, select

from kith.auth import service as auth
from kith.core.config import Settings
from kith.core.urls import API_PREFIX
from kith.db.models import FriendRequest, Friendship, User
from kith.media.storage import LocalMediaStorage
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[offset : offset + size] for offset in range(0, len(items), size)]


@dataclass
class LoadData:
    """The contents of the data file that kith.lua reads."""

    tokens: list[tuple[str, str]] = field(default_factory=list)  # (token, user id)
    posts: list[tuple[int, str]] = field(default_factory=list)  # (token index, post id)
    cursors: list[tuple[int, str]] = field(default_factory=list)  # (token index, cursor)
    pairs: list[tuple[int, int, str]] = field(default_factory=list)  # (sender, receiver, receiver id)
    logins: list[str] = field(default_factory=list)

    def write(self, path: Path) -> Path:
        """Lua indexes from 1; the file says so."""
        lines = [f"T\t{token}\t{user_id}" for token, user_id in self.tokens]
        lines += [f"P\t{index + 1}\t{post_id}" for index, post_id in self.posts]
        lines += [f"C\t{index + 1}\t{cursor}" for index, cursor in self.cursors]
        lines += [
            f"F\t{sender + 1}\t{receiver + 1}\t{receiver_id}" for sender, receiver, receiver_id in self.pairs
        ]
        lines += [f"L\t{name}" for name in self.logins]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path


async def mint_tokens(settings: Settings, user_ids: Sequence[str]) -> list[str]:
    """An access token per user, from a new session of theirs."""
    resources = await Resources.open(settings, LocalMediaStorage(settings.media_root))
    tokens: list[str] = []
    try:
        for chunk in _chunks(user_ids, 500):
            async with unit_of_work(resources) as session:
                users = {
                    user.id: user for user in await session.scalars(select(User).where(User.id.in_(chunk)))
                }
                for user_id in chunk:
                    pair = await auth.start_session(
                        session,
                        resources.tokens,
                        resources.settings,
                        users[user_id],
                        "kith-bench",
                        now=resources.clock.now(),
                    )
                    tokens.append(pair.access_token)
    finally:
        await resources.close()
    return tokens


async def user_ids_by_name(settings: Settings, names: Sequence[str]) -> dict[str, str]:
    resources = await Resources.open(settings, LocalMediaStorage(settings.media_root))
    try:
        async with unit_of_work(resources, write=False) as session:
            rows = await session.execute(select(User.username, User.id).where(User.username.in_(names)))
            # Not dict(result): a Result has keys(), so dict() would read it as a mapping.
            return {name: user_id for name, user_id in rows.tuples()}  # noqa: C416
    finally:
        await resources.close()


async def friends_of(settings: Settings, user_id: str) -> list[str]:
    resources = await Resources.open(settings, LocalMediaStorage(settings.media_root))
    try:
        async with unit_of_work(resources, write=False) as session:
            found = await session.scalars(select(Friendship.friend_id).where(Friendship.user_id == user_id))
            return list(found.all())
    finally:
        await resources.close()


async def fresh_pairs(
    settings: Settings, user_ids: Sequence[str], rng: random.Random
) -> list[tuple[int, int]]:
    """Index pairs of users who are not friends and never exchanged a request, shuffled."""
    resources = await Resources.open(settings, LocalMediaStorage(settings.media_root))
    try:
        async with unit_of_work(resources, write=False) as session:
            linked: set[tuple[str, str]] = set()
            for chunk in _chunks(user_ids, 500):
                rows = await session.execute(
                    select(Friendship.user_id, Friendship.friend_id).where(Friendship.user_id.in_(chunk))
                )
                linked.update((low, high) for low, high in rows.tuples())
                requests = await session.execute(
                    select(FriendRequest.sender_id, FriendRequest.receiver_id).where(
                        or_(FriendRequest.sender_id.in_(chunk), FriendRequest.receiver_id.in_(chunk))
                    )
                )
                for sender, receiver in requests.tuples():
                    linked.update(((sender, receiver), (receiver, sender)))
    finally:
        await resources.close()
    pairs = [
        (first, second)
        for first, second in itertools.combinations(range(len(user_ids)), 2)
        if (user_ids[first], user_ids[second]) not in linked
    ]
    rng.shuffle(pairs)
    # Either direction: a user both sends and receives.
    return [(a, b) if rng.random() < 0.5 else (b, a) for a, b in pairs]


async def read_feeds(
    base_url: str, tokens: Sequence[str], *, pages: int = 1, concurrency: int = 8
) -> list[tuple[list[str], str | None]]:
    """For each token: the post ids of its feed's first page, and the cursor of page `pages`."""
    semaphore = asyncio.Semaphore(concurrency)

    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def walk(token: str) -> tuple[list[str], str | None]:
            async with semaphore:
                headers = {"Authorization": f"Bearer {token}"}
                response = await client.get(f"{API_PREFIX}/feed", params={"limit": 20}, headers=headers)
                response.raise_for_status()
                body = response.json()
                first_ids = [item["id"] for item in body["items"]]
                cursor = body["next_cursor"]
                for _ in range(pages - 2):
                    if cursor is None:
                        break
                    response = await client.get(
                        f"{API_PREFIX}/feed", params={"limit": 20, "cursor": cursor}, headers=headers
                    )
                    response.raise_for_status()
                    cursor = response.json()["next_cursor"]
                return first_ids, (cursor if pages > 1 else None)

        return await asyncio.gather(*(walk(token) for token in tokens))


async def load_data(
    settings: Settings,
    base_url: str,
    user_ids: Sequence[str],
    *,
    rng: random.Random,
    deep_page: int,
    deep_readers: int,
    logins: Sequence[str],
) -> LoadData:
    """Tokens for `user_ids`, posts they can read, page-`deep_page` cursors and fresh pairs."""
    tokens = await mint_tokens(settings, user_ids)
    data = LoadData(tokens=list(zip(tokens, user_ids, strict=True)), logins=list(logins))
    for index, (post_ids, _) in enumerate(await read_feeds(base_url, tokens)):
        data.posts.extend((index, post_id) for post_id in post_ids[:10])
    deep = await read_feeds(base_url, tokens[:deep_readers], pages=deep_page)
    data.cursors = [(index, cursor) for index, (_, cursor) in enumerate(deep) if cursor is not None]
    data.pairs = [(a, b, user_ids[b]) for a, b in await fresh_pairs(settings, user_ids, rng)]
    return data
