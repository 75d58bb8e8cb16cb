"""Routes of the administration API (docs/api.md#moderation-and-administration)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from kith.admin import service
from kith.admin.schemas import AdminUserUpdate, AdminUserView, AuditLogView
from kith.audit import service as audit
from kith.auth.dependencies import AdminUser
from kith.core.pagination import CursorPage, OffsetPage
from kith.core.schemas import NO_NUL
from kith.http.deps import Now
from kith.http.errors import problem_responses
from kith.http.pagination import CursorDep, OffsetDep
from kith.http.session import DbSession

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get(
    "/users",
    operation_id="listUsersAsAdmin",
    response_model=OffsetPage[AdminUserView],
    responses=problem_responses(401, 403, 422),
)
async def list_users(
    admin: AdminUser,
    session: DbSession,
    page: OffsetDep,
    q: Annotated[
        str | None, Query(max_length=50, pattern=NO_NUL, description="Username or display-name prefix.")
    ] = None,
) -> object:
    """Every account, suspended ones included, with `total` for paging."""
    found, total = await service.list_users(session, q.strip() if q else None, page)
    return page.result([AdminUserView.model_validate(user) for user in found], total)


@router.patch(
    "/users/{user_id}",
    operation_id="updateUserAsAdmin",
    response_model=AdminUserView,
    responses=problem_responses(400, 401, 403, 404, 422),
)
async def update_user(
    user_id: str, changes: AdminUserUpdate, admin: AdminUser, session: DbSession, now: Now
) -> object:
    """Change a user's role, or suspend them (their tokens stop working at once). Audited."""
    return await service.update_user(session, admin, user_id, changes, now=now)


@router.delete(
    "/users/{user_id}",
    operation_id="deleteUserAsAdmin",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 401, 403, 404),
)
async def delete_user(user_id: str, admin: AdminUser, session: DbSession) -> None:
    """Delete an account and everything it owns. Audited."""
    await service.delete_user(session, admin, user_id)


@router.get(
    "/audit-log",
    operation_id="listAuditLog",
    response_model=CursorPage[AuditLogView],
    responses=problem_responses(401, 403, 422),
)
async def audit_log(admin: AdminUser, session: DbSession, page: CursorDep) -> object:
    """Every moderator and admin action, newest first: who did what to which target, and when."""
    entries, next_cursor = await audit.audit_log(session, page.params)
    return page.page(entries, next_cursor)
