from __future__ import annotations

from typing import Annotated, Self

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, model_validator

from kith.auth.schemas import UserSummary, no_control_characters
from kith.core.schemas import (
    MULTILINE,
    SPACES,
    TEXT_RULE,
    RequestModel,
    ResponseModel,
    Timestamp,
    at_least_one_of,
    given,
)
from kith.db.models import Visibility
from kith.media.schemas import MediaView

MAX_POST_LENGTH = 5000
MAX_COMMENT_LENGTH = 2000
MAX_MEDIA_PER_POST = 4
# What a new post is when it does not say.
DEFAULT_VISIBILITY = Visibility.friends

PostText = Annotated[
    str,
    StringConstraints(max_length=MAX_POST_LENGTH),
    AfterValidator(no_control_characters),
    Field(
        description="Up to 5000 characters after trimming.",
        examples=["Finally finished the bookshelf."],
        json_schema_extra={TEXT_RULE: MULTILINE},
    ),
]
CommentText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_COMMENT_LENGTH),
    AfterValidator(no_control_characters),
    Field(
        description="1 to 2000 characters after trimming.",
        examples=["It looks great!"],
        json_schema_extra={TEXT_RULE: MULTILINE},
    ),
]
MediaId = Annotated[str, StringConstraints(min_length=1, max_length=36)]


class PostCreate(RequestModel):
    """Text, images or both: `content` with something left after trimming, or `media_ids`."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                given("content", {"pattern": f"[^{SPACES}]"}),
                given("media_ids", {"minItems": 1}),
            ]
        }
    )

    content: PostText = ""
    visibility: Visibility = Field(
        default=DEFAULT_VISIBILITY,
        description="`public`: every user; `friends`: you and your friends; `private`: you alone.",
    )
    media_ids: list[MediaId] = Field(
        default_factory=list,
        max_length=MAX_MEDIA_PER_POST,
        description="Up to 4 of your own uploads (from `POST /media`) not yet attached to a post, in order.",
        json_schema_extra={"uniqueItems": True},
    )


class PostUpdate(RequestModel):
    model_config = ConfigDict(json_schema_extra=at_least_one_of("content", "visibility"))

    content: PostText | None = None
    visibility: Visibility | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.content is None and self.visibility is None:
            raise ValueError("give `content`, `visibility`, or both")
        return self


class PostView(ResponseModel):
    id: str
    author: UserSummary
    content: str
    visibility: Visibility
    media: list[MediaView]
    like_count: int
    comment_count: int
    liked_by_me: bool
    created_at: Timestamp
    edited_at: Timestamp | None = Field(description="When the author last changed the post; null if never.")


class LikeState(ResponseModel):
    like_count: int
    liked_by_me: bool


class Liker(UserSummary):
    """A user who liked a post, and when."""

    liked_at: Timestamp


class LikedPost(ResponseModel):
    """A post the user liked, and when (an account's data export, docs/export.md)."""

    post_id: str
    liked_at: Timestamp


class CommentCreate(RequestModel):
    content: CommentText


class CommentUpdate(RequestModel):
    content: CommentText


class CommentView(ResponseModel):
    id: str
    post_id: str
    author: UserSummary
    content: str
    created_at: Timestamp
    edited_at: Timestamp | None = Field(
        description="When the author last changed the comment; null if never."
    )
