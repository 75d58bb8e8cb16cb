"""Routes of reports and moderation (docs/api.md#moderation-and-administration)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from kith.auth.dependencies import CurrentUser, StaffUser
from kith.core.pagination import CursorPage
from kith.db.models import ReportStatus
from kith.http.deps import MediaFiles, Now
from kith.http.errors import problem_responses
from kith.http.idempotency import IdempotencyDep
from kith.http.pagination import CursorDep
from kith.http.session import DbSession
from kith.moderation import service
from kith.moderation.schemas import ReportAction, ReportCreate, ReportView, SubmittedReport

router = APIRouter(tags=["moderation"])


@router.post(
    "/reports",
    operation_id="createReport",
    status_code=status.HTTP_201_CREATED,
    response_model=SubmittedReport,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def submit_report(
    idempotency: IdempotencyDep, data: ReportCreate, user: CurrentUser, session: DbSession
) -> object:
    """Report a post, comment or user to the moderators.

    404 when the caller cannot see the target; 400 `cannot_report_self` for one's own
    account or content; 409 `already_reported` while the caller's earlier report on the
    same target is still open.
    """
    if idempotency.replay is not None:
        return idempotency.replay
    return await idempotency.answer(session, await service.submit_report(session, user, data))


@router.get(
    "/moderation/reports",
    operation_id="listReports",
    response_model=CursorPage[ReportView],
    responses=problem_responses(401, 403, 422),
)
async def list_reports(
    moderator: StaffUser,
    session: DbSession,
    page: CursorDep,
    report_status: Annotated[ReportStatus, Query(alias="status", description="Which reports to list.")] = (
        ReportStatus.open
    ),
) -> object:
    """Reports, newest first, with the reporter and a short view of the target as it is now
    (`target` is null once the target is gone). Moderators and admins only (403 `insufficient_role`).
    """
    reports, next_cursor = await service.list_reports(session, moderator, report_status, page.params)
    return page.page(reports, next_cursor)


@router.patch(
    "/moderation/reports/{report_id}",
    operation_id="resolveReport",
    response_model=ReportView,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def act_on_report(
    report_id: str,
    data: ReportAction,
    moderator: StaffUser,
    session: DbSession,
    files: MediaFiles,
    now: Now,
) -> object:
    """Handle an open report: `dismiss` it, or `remove_content`.

    `remove_content` deletes the reported post or comment, or suspends the reported user
    (ending their sessions), and resolves every other open report on the same target.
    Audited. 409 `not_open` when the report was already handled; 400
    `cannot_suspend_staff` for reports on moderators and admins.
    """
    return await service.act_on_report(session, files, moderator, report_id, data.action, now=now)
