from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from kith.auth.schemas import UserSummary, no_control_characters
from kith.core.schemas import MULTILINE, TEXT_RULE, RequestModel, ResponseModel, Timestamp
from kith.db.models import ReportStatus, ReportTarget

EXCERPT_LENGTH = 280

ReasonText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=1000),
    AfterValidator(no_control_characters),
    Field(
        description="Why this breaks the rules; 1 to 1000 characters.",
        examples=["Spam: the same link 40 times."],
        json_schema_extra={TEXT_RULE: MULTILINE},
    ),
]


class ReportCreate(RequestModel):
    target_type: ReportTarget
    target_id: Annotated[str, StringConstraints(min_length=1, max_length=36)] = Field(
        description="The id of the post, comment or user reported."
    )
    reason: ReasonText


class SubmittedReport(ResponseModel):
    """A report as its reporter sees it."""

    id: str
    target_type: ReportTarget
    target_id: str
    reason: str
    status: ReportStatus
    created_at: Timestamp


class ReportedContent(ResponseModel):
    """A short view of the reported post, comment or user, as it is now."""

    author: UserSummary = Field(description="Who wrote the post or comment; for a user report, the user.")
    excerpt: str | None = Field(
        description=f"The first {EXCERPT_LENGTH} characters of the post or comment, or the user's bio."
    )
    post_id: str | None = Field(default=None, description="For a comment: the post it is under.")
    created_at: Timestamp


class ReportView(SubmittedReport):
    """A report as moderators see it."""

    reporter: UserSummary
    resolved_at: Timestamp | None
    resolved_by_id: str | None
    resolution: str | None = Field(
        description="`dismissed`, `content_removed`, `user_suspended` or `already_removed`; null while open."
    )
    target: ReportedContent | None = Field(description="Null when the target no longer exists.")


class ReportAction(RequestModel):
    action: Literal["dismiss", "remove_content"] = Field(
        description="`dismiss`: no rule was broken. `remove_content`: delete the post or comment, "
        "or suspend the user; every other open report on the same target is resolved with it."
    )
