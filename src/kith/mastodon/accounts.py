"""Mastodon's accounts, answered from Kith's users and friendships (docs/mastodon.md#accounts).

Kith's friendships are mutual, so one friend is both a follower and a followed account, and
every account is `locked`: a follow is a friend request that waits for an answer.
"""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from kith.auth.dependencies import require_scope
from kith.core.urls import absolute_url
from kith.db.models import User
from kith.http.session import DbSession
from kith.mastodon import service
from kith.mastodon.ids import mastodon_datetime, to_mastodon_id
from kith.mastodon.schemas import Account, AccountSource, CredentialAccount
from kith.social import service as social
from kith.users import service as users
from kith.users.schemas import UserProfile
from kith.web.assets import KITH

router = APIRouter(include_in_schema=False)

# `read:accounts`, or `profile`: the scope that allows only this.
ProfileReader = Annotated[User, Depends(require_scope("read:accounts", "profile"))]


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
