"""Moderation rules: reporting what one can see, and acting on reports.

Every moderator action is recorded in the audit log in the same transaction. Content
is removed through the posts domain, so counters and media stay right.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kith.audit import service as audit
from kith.auth import service as auth
from kith.auth.schemas import UserSummary
from kith.core.errors import BadRequest, Conflict, NotFound
from kith.core.pagination import CursorParams
from kith.core.storage import MediaStorage
from kith.db.models import Report, ReportStatus, ReportTarget, User, open_report_key
from kith.moderation import repository
from kith.moderation.schemas import EXCERPT_LENGTH, ReportCreate, ReportedContent, ReportView
from kith.posts import service as posts

DISMISSED = "dismissed"
CONTENT_REMOVED = "content_removed"
USER_SUSPENDED = "user_suspended"
ALREADY_REMOVED = "already_removed"


class ReportNotFound(NotFound):
    code = "report_not_found"
    default_detail = "No such report."
    description = "No such report."


class AlreadyReported(Conflict):
    code = "already_reported"
    default_detail = "You already have an open report on this; a moderator will look at it."
    description = "The caller already has an open report on this target."


class CannotReportSelf(BadRequest):
    code = "cannot_report_self"
    default_detail = "You cannot report yourself or your own content."
    description = "A user cannot report themselves or their own content."


class ReportNotOpen(Conflict):
    code = "not_open"
    default_detail = "This report has already been handled."
    description = "The report has already been handled."


class CannotSuspendStaff(BadRequest):
    code = "cannot_suspend_staff"
    default_detail = (
        "Moderators and admins are not suspended through reports; an admin changes their account."
    )
    description = "Moderators and admins are not suspended through reports; an admin changes their account."


def _excerpt(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= EXCERPT_LENGTH else text[: EXCERPT_LENGTH - 1] + "…"


# --- reporting -------------------------------------------------------------------------


async def _reported_author_id(session: AsyncSession, reporter: User, data: ReportCreate) -> str:
    """Check the reporter can see the target (404 otherwise); returns whose it is."""
    if data.target_type == ReportTarget.post:
        return (await posts.readable_post(session, reporter, data.target_id)).post.author_id
    if data.target_type == ReportTarget.comment:
        return (await posts.readable_comment(session, reporter, data.target_id)).comment.author_id
    return (await posts.visible_author(session, reporter, data.target_id)).id


async def submit_report(session: AsyncSession, reporter: User, data: ReportCreate) -> Report:
    """Report a post, comment or user the reporter can see. One open report per target each."""
    if await _reported_author_id(session, reporter, data) == reporter.id:
        raise CannotReportSelf()
    key = open_report_key(reporter.id, data.target_type, data.target_id)
    if await repository.open_report_of(session, key) is not None:
        raise AlreadyReported()
    report = Report(
        reporter_id=reporter.id,
        target_type=data.target_type,
        target_id=data.target_id,
        reason=data.reason,
        open_key=key,
    )
    session.add(report)
    try:
        await session.flush()
    except IntegrityError:
        # A concurrent request of the same reporter got there first.
        raise AlreadyReported() from None
    return report


# --- reviewing -------------------------------------------------------------------------


async def _snapshots(
    session: AsyncSession, moderator: User, reports: Sequence[Report]
) -> dict[tuple[str, str], ReportedContent]:
    """What each report's target looks like now: one query per kind of target."""

    def ids(kind: ReportTarget) -> list[str]:
        return sorted({report.target_id for report in reports if report.target_type == kind})

    found: dict[tuple[str, str], ReportedContent] = {}
    for post, author in await posts.readable_posts_by_id(session, moderator, ids(ReportTarget.post)):
        found[ReportTarget.post, post.id] = ReportedContent(
            author=UserSummary.model_validate(author),
            excerpt=_excerpt(post.content),
            created_at=post.created_at,
        )
    for item in await posts.readable_comments_by_id(session, moderator, ids(ReportTarget.comment)):
        found[ReportTarget.comment, item.comment.id] = ReportedContent(
            author=UserSummary.model_validate(item.author),
            excerpt=_excerpt(item.comment.content),
            post_id=item.comment.post_id,
            created_at=item.comment.created_at,
        )
    for user in await repository.users_by_id(session, ids(ReportTarget.user)):
        found[ReportTarget.user, user.id] = ReportedContent(
            author=UserSummary.model_validate(user),
            excerpt=_excerpt(user.bio or None),
            created_at=user.created_at,
        )
    return found


async def _views(
    session: AsyncSession, moderator: User, rows: Sequence[tuple[Report, User]]
) -> list[ReportView]:
    snapshots = await _snapshots(session, moderator, [report for report, _ in rows])
    return [
        ReportView(
            id=report.id,
            target_type=report.target_type,
            target_id=report.target_id,
            reason=report.reason,
            status=report.status,
            created_at=report.created_at,
            reporter=UserSummary.model_validate(reporter),
            resolved_at=report.resolved_at,
            resolved_by_id=report.resolved_by_id,
            resolution=report.resolution,
            target=snapshots.get((report.target_type, report.target_id)),
        )
        for report, reporter in rows
    ]


async def list_reports(
    session: AsyncSession, moderator: User, status: ReportStatus, params: CursorParams
) -> tuple[list[ReportView], str | None]:
    """Reports with the given status, newest first, each with its reporter and target."""
    result = await session.execute(params.window(repository.reports_with_reporters(status), Report.id))
    rows, next_cursor = params.cut([(row[0], row[1]) for row in result], lambda row: row[0].id)
    return await _views(session, moderator, rows), next_cursor


async def _load(session: AsyncSession, report_id: str) -> tuple[Report, User]:
    found = await repository.report_with_reporter(session, report_id)
    if found is None:
        raise ReportNotFound()
    if found[0].status != ReportStatus.open:
        raise ReportNotOpen()
    return found


async def _close(
    session: AsyncSession,
    moderator: User,
    report: Report,
    *,
    status: ReportStatus,
    resolution: str,
    now: datetime,
) -> list[str]:
    closed = await repository.close_reports(
        session,
        report,
        with_others_on_target=status == ReportStatus.resolved,
        status=status,
        resolution=resolution,
        moderator_id=moderator.id,
        now=now,
    )
    if report.id not in closed:
        # Another moderator handled it between our read and our write.
        raise ReportNotOpen()
    return closed


async def act_on_report(
    session: AsyncSession,
    files: MediaStorage,
    moderator: User,
    report_id: str,
    action: str,
    *,
    now: datetime,
) -> ReportView:
    """Dismiss a report, or remove what it reports: delete the post or comment, suspend the user.

    Removing resolves every open report on the same target. 409 `not_open` once handled.
    """
    report, reporter = await _load(session, report_id)
    reported = {"reported_type": report.target_type, "reported_id": report.target_id}
    if action == "dismiss":
        await _close(session, moderator, report, status=ReportStatus.dismissed, resolution=DISMISSED, now=now)
        audit.record_action(session, moderator, "report.dismissed", "report", report.id, **reported)
        return (await _views(session, moderator, [(report, reporter)]))[0]

    resolution = await _remove_target(session, files, moderator, report, now)
    closed = await _close(
        session, moderator, report, status=ReportStatus.resolved, resolution=resolution, now=now
    )
    audit.record_action(
        session,
        moderator,
        "report.resolved",
        "report",
        report.id,
        resolution=resolution,
        reports_closed=closed,
        **reported,
    )
    return (await _views(session, moderator, [(report, reporter)]))[0]


async def _remove_target(
    session: AsyncSession, files: MediaStorage, moderator: User, report: Report, now: datetime
) -> str:
    """Remove the reported post or comment, or suspend the reported user; returns the resolution."""
    if report.target_type == ReportTarget.post:
        found_posts = await posts.readable_posts_by_id(session, moderator, [report.target_id])
        if not found_posts:
            return ALREADY_REMOVED
        await posts.remove_post(session, files, moderator, found_posts[0], report_id=report.id)
        return CONTENT_REMOVED
    if report.target_type == ReportTarget.comment:
        found_comments = await posts.readable_comments_by_id(session, moderator, [report.target_id])
        if not found_comments:
            return ALREADY_REMOVED
        await posts.remove_comment(session, moderator, found_comments[0], report_id=report.id)
        return CONTENT_REMOVED
    user = await auth.get_user(session, report.target_id)
    if user is None:
        return ALREADY_REMOVED
    if user.is_staff:
        raise CannotSuspendStaff()
    if not user.suspended:
        user.suspended = True
        await auth.logout_all(session, user.id, now=now)
        audit.record_action(session, moderator, "user.suspended", "user", user.id, report_id=report.id)
    return USER_SUSPENDED
