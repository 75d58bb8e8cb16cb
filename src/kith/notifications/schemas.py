from __future__ import annotations

from typing import Annotated, Self

from pydantic import ConfigDict, Field, StrictBool, model_validator

from kith.auth.schemas import UserSummary
from kith.core.schemas import RequestModel, ResponseModel, Timestamp, given
from kith.db.models import NotificationType


class NotificationView(ResponseModel):
    id: str
    type: NotificationType
    actor: UserSummary
    post_id: str | None = None
    comment_id: str | None = None
    friend_request_id: str | None = None
    created_at: Timestamp
    read: bool


class UnreadCount(ResponseModel):
    count: int


class MarkRead(RequestModel):
    """Either `ids` (up to 100 of the caller's notifications) or `all: true`."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                {**given("ids"), "not": given("all")},
                {**given("all", {"const": True}), "not": given("ids")},
            ]
        }
    )

    ids: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=100)] | None = None
    all: StrictBool | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.ids is None) == (self.all is None) or self.all is False:
            raise ValueError("give either `ids` or `all: true`")
        return self
