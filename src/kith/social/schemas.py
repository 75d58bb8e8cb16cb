"""Request and response bodies of the social domain (docs/api.md#friends-and-blocks)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from kith.auth.schemas import UserSummary
from kith.core.schemas import RequestModel, ResponseModel, Timestamp
from kith.db.models import FriendRequest, FriendRequestStatus, User

UserId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100),
    Field(examples=["0193a7a2-5a6e-7c3b-9f1e-2b7d4c1a9e55"]),
]


class FriendRequestCreate(RequestModel):
    receiver_id: UserId


class FriendRequestAction(RequestModel):
    action: Literal["accept", "reject"] = Field(examples=["accept"])


class Direction(StrEnum):
    incoming = "incoming"
    outgoing = "outgoing"


class FriendRequestView(ResponseModel):
    id: str
    sender: UserSummary
    receiver: UserSummary
    status: FriendRequestStatus
    created_at: Timestamp

    @classmethod
    def of(cls, request: FriendRequest, sender: User, receiver: User) -> FriendRequestView:
        return cls(
            id=request.id,
            sender=UserSummary.model_validate(sender),
            receiver=UserSummary.model_validate(receiver),
            status=request.status,
            created_at=request.created_at,
        )


class FriendView(UserSummary):
    """A friend, with the time the friendship began."""

    friends_since: Timestamp

    @classmethod
    def of(cls, user: User, since: datetime) -> FriendView:
        return cls.model_validate({**_summary_fields(user), "friends_since": since})


class BlockCreate(RequestModel):
    user_id: UserId


class BlockView(ResponseModel):
    user: UserSummary
    created_at: Timestamp

    @classmethod
    def of(cls, user: User, since: datetime) -> BlockView:
        return cls(user=UserSummary.model_validate(user), created_at=since)


def _summary_fields(user: User) -> dict[str, object]:
    return {name: getattr(user, name) for name in UserSummary.model_fields}
