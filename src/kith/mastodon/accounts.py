"""Mastodon's accounts, answered from Kith's users and friendships (docs/mastodon.md#accounts).

Kith's friendships are mutual, so one friend is both a follower and a followed account (the
two lists are one), and every account is `locked`: a follow is a friend request that waits for
an answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from kith.auth import service as auth
from kith.auth.dependencies import require_scope
from kith.core.errors import NotFound, Unprocessable
from kith.core.pagination import CursorParams, OffsetParams, encode_timed_position
from kith.core.urls import absolute_url
from kith.db.models import FriendRequestStatus, User
from kith.http.deps import AppSettings, Now
from kith.http.ratelimit import rate_limit
from kith.http.session import DbSession
from kith.mastodon import service
from kith.mastodon.ids import from_mastodon_id, mastodon_datetime, to_mastodon_id
from kith.mastodon.oauth import request_params
from kith.mastodon.paging import page_links
from kith.mastodon.schemas import Account, AccountSource, CredentialAccount, Relationship, SearchResults
from kith.social import service as social
from kith.social.relations import Relationship as Standing
from kith.users import service as users
from kith.users.schemas import ProfileUpdate, UserProfile
from kith.web.assets import KITH

router = APIRouter(include_in_schema=False)

# `read:accounts`, or `profile`: the scope that allows only this.
ProfileReader = Annotated[User, Depends(require_scope("read:accounts", "profile"))]
AccountsReader = Annotated[User, Depends(require_scope("read:accounts"))]
AccountsWriter = Annotated[User, Depends(require_scope("write:accounts"))]
FollowsReader = Annotated[User, Depends(require_scope("read:follows"))]
FollowsWriter = Annotated[User, Depends(require_scope("write:follows"))]
BlocksWriter = Annotated[User, Depends(require_scope("write:blocks"))]
SearchReader = Annotated[User, Depends(require_scope("read:search"))]
# Mastodon's page sizes for lists of accounts: 40 by default, 80 at most (more is taken as 80).
DEFAULT_PAGE = 40
MAX_PAGE = 80
Limit = Annotated[int, Query()]


def note_html(bio: str | None) -> str:
    """A bio as Mastodon's `note`: HTML, escaped, one paragraph, line breaks kept."""
    if not bio:
        return ""
    return "<p>" + "<br>".join(escape(line) for line in bio.splitlines()) + "</p>"


def account_of(profile: UserProfile) -> Account:
    """A Kith profile as Mastodon's Account: friends count as followers and as followed."""
    picture = profile.avatar_url or absolute_url(f"{KITH.base}/icon.svg")
    joined = profile.created_at.replace(hour=0, minute=0, second=0, microsecond=0)
    page = absolute_url(f"/users/{profile.id}")
    return Account(
        id=to_mastodon_id(profile.id),
        username=profile.username,
        acct=profile.username,
        display_name=profile.display_name,
        # Mastodon gives the day an account was made, not the moment.
        created_at=mastodon_datetime(joined),
        note=note_html(profile.bio),
        url=page,
        uri=page,
        avatar=picture,
        avatar_static=picture,
        header=picture,
        header_static=picture,
        followers_count=profile.friend_count,
        following_count=profile.friend_count,
        statuses_count=profile.post_count,
    )


async def credential_account(session: AsyncSession, user: User) -> CredentialAccount:
    """The signed-in user's own account, with what they may edit (`source`)."""
    profile = await users.profile(session, user, user)
    return CredentialAccount(
        **account_of(profile).model_dump(),
        source=AccountSource(
            privacy=service.preferences().default_visibility,
            sensitive=False,
            language=None,
            note=profile.bio or "",
            fields=[],
            follow_requests_count=await social.pending_incoming_count(session, user),
        ),
    )


@router.get("/api/v1/accounts/verify_credentials")
async def verify_credentials(user: ProfileReader, session: DbSession) -> CredentialAccount:
    """The signed-in user's own account."""
    return await credential_account(session, user)


@router.patch("/api/v1/accounts/update_credentials")
async def update_credentials(
    request: Request, user: AccountsWriter, session: DbSession, now: Now
) -> CredentialAccount:
    """Change the display name (`display_name`) and the bio (`note`), with Kith's rules for
    both; Mastodon's other fields (pictures, `locked`, `fields_attributes`, `source[...]`) are
    not Kith's and are left as they are."""
    params = await request_params(request)
    changes = {
        name: params[field]
        for field, name in (("display_name", "display_name"), ("note", "bio"))
        if field in params
    }
    try:
        update = ProfileUpdate.model_validate(changes)
    except ValidationError as error:
        raise Unprocessable(
            "Validation failed: " + "; ".join(str(item["msg"]) for item in error.errors()),
            errors=[
                {
                    "field": ".".join(map(str, item["loc"])),
                    "message": str(item["msg"]),
                    "type": str(item["type"]),
                }
                for item in error.errors()
            ],
        ) from None
    await users.update_profile(session, user, update, now=now)
    return await credential_account(session, user)


async def account_of_user(session: AsyncSession, viewer: User, user: User) -> Account:
    """A user's account as `viewer` sees it (its counts are a few queries)."""
    return account_of(await users.profile(session, viewer, user))


class Accounts:
    """The accounts one answer shows, each built once: a page of statuses or notifications
    names the same few people many times."""

    def __init__(self, session: AsyncSession, viewer: User) -> None:
        self._session, self._viewer = session, viewer
        self._built: dict[str, Account] = {}
        self._named: dict[str, User | None] = {}

    async def of(self, user: User) -> Account:
        if user.id not in self._built:
            self._built[user.id] = await account_of_user(self._session, self._viewer, user)
        return self._built[user.id]

    async def named(self, keys: Collection[str]) -> dict[str, User]:
        """The users the viewer may see among the lower-case usernames `keys` (the people a
        status mentions), each looked up once per answer: one query for those not known yet."""
        missing = [key for key in keys if key not in self._named]
        if missing:
            found = await social.users_named(self._session, self._viewer, missing)
            self._named.update({key: found.get(key) for key in missing})
        return {key: user for key in keys if (user := self._named[key]) is not None}


async def _visible(
    session: AsyncSession, viewer: User, account_id: str, *, hide_blocked: bool = True
) -> User:
    """The account a Mastodon id names, if the viewer may see it; 404 otherwise (as Kith)."""
    kith_id = from_mastodon_id(account_id)
    if kith_id is None:
        raise auth.UserNotFound()
    return await social.visible_user(session, viewer, kith_id, hide_blocked=hide_blocked)


async def relationship_of(session: AsyncSession, viewer: User, user: User) -> Relationship:
    """How the viewer stands to `user`, in Mastodon's words: friends follow each other."""
    standing = await social.relationship(session, viewer, user)
    friends = standing == Standing.friends
    return Relationship(
        id=to_mastodon_id(user.id),
        following=friends,
        showing_reblogs=friends,
        followed_by=friends,
        blocking=await social.blocks(session, viewer.id, user.id),
        requested=standing == Standing.request_sent,
        requested_by=standing == Standing.request_received,
    )


@router.get("/api/v1/accounts/relationships")
async def relationships(
    user: FollowsReader,
    session: DbSession,
    ids: Annotated[list[str], Query(alias="id[]")] = [],  # noqa: B006
    one: Annotated[list[str], Query(alias="id")] = [],  # noqa: B006
) -> list[Relationship]:
    """How the caller stands to each account of `id[]` (or `id`, as Mastodon.py sends one);
    accounts the caller may not see are left out."""
    found = []
    for account_id in [*ids, *one][:MAX_PAGE]:
        try:
            other = await _visible(session, user, account_id, hide_blocked=False)
        except NotFound:
            continue
        if other.id != user.id and await social.blocks(session, other.id, user.id):
            continue  # the other blocks the caller: to the caller they do not exist
        found.append(await relationship_of(session, user, other))
    return found


@router.get("/api/v1/accounts/lookup")
async def lookup(
    user: AccountsReader,
    session: DbSession,
    settings: AppSettings,
    acct: Annotated[str, Query(max_length=300)],
) -> Account:
    """The account of a username (`acct`: `name` or `name@<this server's domain>`)."""
    name, _, domain = acct.strip().lstrip("@").partition("@")
    found = (
        None
        if domain and domain.lower() != service.domain(settings)
        else await auth.find_by_username(session, name)
    )
    if found is None:
        raise auth.UserNotFound()
    return await account_of_user(session, user, await social.visible_user(session, user, found.id))


@router.get("/api/v2/search")
async def search(
    user: SearchReader,
    session: DbSession,
    q: Annotated[str, Query(max_length=100)] = "",
    type: Annotated[str | None, Query()] = None,
    limit: Limit = DEFAULT_PAGE,
    offset: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> SearchResults:
    """Accounts whose username or display name starts with `q` (Kith's directory search); no
    statuses or hashtags."""
    if type not in (None, "accounts") or not q.strip():
        return SearchResults(accounts=[])
    size = min(max(limit, 1), MAX_PAGE)
    if offset % size:
        return SearchResults(accounts=[])  # Kith pages by whole pages of this size
    page = OffsetParams(offset // size + 1, size)
    found, _total = await users.search(session, user, q.strip().lstrip("@"), page)
    return SearchResults(accounts=[await account_of_user(session, user, other) for other in found])


@router.get("/api/v1/follow_requests")
async def follow_requests(
    request: Request,
    response: Response,
    user: FollowsReader,
    session: DbSession,
    limit: Limit = DEFAULT_PAGE,
    max_id: Annotated[str | None, Query()] = None,
) -> list[Account]:
    """The friend requests waiting for the caller's answer, newest first, as their senders'
    accounts; `Link` to the next page (`max_id`)."""
    after = from_mastodon_id(max_id) if max_id else None
    params = CursorParams(min(max(limit, 1), MAX_PAGE), after)
    found, next_cursor = await social.list_requests(
        session, user, incoming=True, status=FriendRequestStatus.pending, params=params
    )
    if next_cursor is not None and found:
        query = urlencode({"limit": params.limit, "max_id": to_mastodon_id(found[-1][0].id)})
        response.headers["Link"] = f'<{absolute_url(request.url.path)}?{query}>; rel="next"'
    return [await account_of_user(session, user, sender) for _request, sender, _receiver in found]


async def _answer(
    session: AsyncSession, user: User, account_id: str, *, accept: bool, now: datetime
) -> Relationship:
    sender = await _visible(session, user, account_id)
    pending = await social.pending_request_from(session, sender.id, user.id)
    if pending is None:
        raise social.FriendRequestNotFound()
    await social.respond(session, user, pending.id, accept=accept, now=now)
    return await relationship_of(session, user, sender)


@router.post("/api/v1/follow_requests/{account_id}/authorize")
async def authorize_follow_request(
    account_id: str, user: FollowsWriter, session: DbSession, now: Now
) -> Relationship:
    """Accept the account's friend request: the two are friends, each following the other."""
    return await _answer(session, user, account_id, accept=True, now=now)


@router.post("/api/v1/follow_requests/{account_id}/reject")
async def reject_follow_request(
    account_id: str, user: FollowsWriter, session: DbSession, now: Now
) -> Relationship:
    """Decline the account's friend request (it may ask again after 24 hours)."""
    return await _answer(session, user, account_id, accept=False, now=now)


@router.post("/api/v1/accounts/{account_id}/follow", dependencies=[rate_limit("friend_requests")])
async def follow(account_id: str, user: FollowsWriter, session: DbSession, now: Now) -> Relationship:
    """Follow an account: in Kith, ask to be friends (`requested` until they accept; at once
    friends when they had asked already). Following a friend or asking again changes nothing."""
    other = await _visible(session, user, account_id)
    standing = await social.relationship(session, user, other)
    if standing not in (Standing.friends, Standing.request_sent):
        await social.send_request(session, user, other, now=now)
    return await relationship_of(session, user, other)


@router.post("/api/v1/accounts/{account_id}/unfollow")
async def unfollow(account_id: str, user: FollowsWriter, session: DbSession) -> Relationship:
    """Unfollow: end the friendship (for both: Kith's friendships are mutual), or withdraw the
    request still waiting."""
    other = await _visible(session, user, account_id)
    standing = await social.relationship(session, user, other)
    if standing == Standing.friends:
        await social.unfriend(session, user, other.id)
    elif standing == Standing.request_sent:
        pending = await social.pending_request_from(session, user.id, other.id)
        if pending is not None:
            await social.cancel(session, user, pending.id)
    return await relationship_of(session, user, other)


@router.post("/api/v1/accounts/{account_id}/block")
async def block(account_id: str, user: BlocksWriter, session: DbSession, now: Now) -> Relationship:
    """Block an account: any friendship and request between the two end, and neither sees the other."""
    other = await _visible(session, user, account_id, hide_blocked=False)
    if not await social.blocks(session, user.id, other.id):
        await social.block(session, user, other, now=now)
    return await relationship_of(session, user, other)


@router.post("/api/v1/accounts/{account_id}/unblock")
async def unblock(account_id: str, user: BlocksWriter, session: DbSession) -> Relationship:
    """Lift the caller's block of the account."""
    other = await _visible(session, user, account_id, hide_blocked=False)
    if other.id != user.id and await social.blocks(session, other.id, user.id):
        raise auth.UserNotFound()  # they block the caller: to the caller they do not exist
    if await social.blocks(session, user.id, other.id):
        await social.unblock(session, user, other.id)
    return await relationship_of(session, user, other)


# A friendship has no id of its own: its place in a list of friends is when it began and the
# friend's id, the keyset Kith pages it by. As a Mastodon id it is one number, the microseconds
# since 1970 followed by the friend's UUID in 39 digits, so it sorts as the list does; links
# carry it as `max_id` and `min_id`, as Mastodon's carry a follow's id rather than an account's.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UUID_DIGITS = 10**39
_MAX_POSITION_DIGITS = 60
FriendPosition = tuple[datetime, str]


def friendship_id(since: datetime, friend_id: str) -> str:
    """The Mastodon id of a friendship's place in a list of friends."""
    micros = (since - _EPOCH) // timedelta(microseconds=1)
    return str(micros * _UUID_DIGITS + uuid.UUID(friend_id).int)


def friendship_position(name: str, value: str | None) -> FriendPosition | None:
    """The (since, friend id) place a friendship's Mastodon id names; 422 when it is none."""
    if not value:
        return None
    invalid = Unprocessable(f"Validation failed: {name} is not an id")
    if not value.isascii() or not value.isdigit() or len(value) > _MAX_POSITION_DIGITS:
        raise invalid
    micros, friend = divmod(int(value), _UUID_DIGITS)
    if friend >= 1 << 128:
        raise invalid
    try:
        since = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise invalid from None
    return since, str(uuid.UUID(int=friend))


async def friends_between(
    session: AsyncSession,
    viewer: User,
    user: User,
    *,
    below: FriendPosition | None,
    above: FriendPosition | None,
    limit: int,
    from_above: bool,
) -> tuple[list[tuple[User, datetime]], bool]:
    """`user`'s friends that the viewer may see (Kith's `list_friends`), newest friendship
    first, strictly between `below` and `above`: the newest `limit` of them, or with
    `from_above` the `limit` just above `above`. Also whether older friends remain below the
    last one.

    Kith pages friends downwards only, so `from_above` reads down from `below` (or the top)
    to `above`, a page of MAX_PAGE at a time, and keeps the last `limit` it read."""
    size = MAX_PAGE if from_above else limit
    kept: list[tuple[User, datetime]] = []
    after = below
    while True:
        params = CursorParams(size, encode_timed_position(*after) if after else None)
        rows, next_cursor = await social.list_friends(session, viewer, user, params)
        for friend, since in rows:
            if above is not None and (since, friend.id) <= above:
                return kept[-limit:], True
            kept.append((friend, since))
        if next_cursor is None or not from_above:
            return kept[-limit:], next_cursor is not None
        last, since = rows[-1]
        after = (since, last.id)


@router.get("/api/v1/accounts/{account_id}/followers")
@router.get("/api/v1/accounts/{account_id}/following")
async def friends(
    account_id: str,
    request: Request,
    response: Response,
    user: AccountsReader,
    session: DbSession,
    max_id: Annotated[str | None, Query()] = None,
    since_id: Annotated[str | None, Query()] = None,
    min_id: Annotated[str | None, Query()] = None,
    limit: Limit = DEFAULT_PAGE,
) -> list[Account]:
    """The account's followers, or the accounts it follows: both are its friends, those the
    caller may see (Kith's friends list), newest friendship first. Paged as Mastodon pages
    follows: `max_id`, `since_id`, `min_id` are the ids of places in the list that the `Link`
    header gives (`next` only while older friends remain); `limit` 40, at most 80. 404 for an
    account the caller may not see."""
    other = await _visible(session, user, account_id)
    size = min(max(limit, 1), MAX_PAGE)
    found, older = await friends_between(
        session,
        user,
        other,
        below=friendship_position("max_id", max_id),
        above=friendship_position("min_id", min_id) or friendship_position("since_id", since_id),
        limit=size,
        from_above=bool(min_id),
    )
    if found:
        response.headers["Link"] = page_links(
            request,
            size,
            newest=friendship_id(found[0][1], found[0][0].id),
            oldest=friendship_id(found[-1][1], found[-1][0].id),
            older=older,
        )
    accounts = Accounts(session, user)
    return [await accounts.of(friend) for friend, _since in found]


@router.get("/api/v1/accounts/{account_id}")
async def account(account_id: str, user: AccountsReader, session: DbSession) -> Account:
    """An account the caller may see (404 for an unknown, suspended or blocking one, as in Kith)."""
    return await account_of_user(session, user, await _visible(session, user, account_id))
