"""Admin rules: roles, suspension, deletion, and recording every staff action."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from kith.admin.schemas import AdminUserUpdate
from kith.audit.service import record_action
from kith.auth import service as auth
from kith.core.errors import BadRequest
from kith.core.pagination import OffsetParams
from kith.db.models import User
from kith.users import service as users


class CannotModifySelf(BadRequest):
    code = "cannot_modify_self"
    default_detail = "Admins cannot change or delete their own account here; ask another admin."
    description = "Admins cannot change or delete their own account through the admin API."


async def list_users(
    session: AsyncSession, query: str | None, params: OffsetParams
) -> tuple[list[User], int]:
    return await params.fetch(session, users.search_statement(query, include_suspended=True))


async def _target(session: AsyncSession, admin: User, user_id: str) -> User:
    user = await auth.get_user(session, user_id)
    if user is None:
        raise auth.UserNotFound()
    if user.id == admin.id:
        raise CannotModifySelf()
    return user


async def update_user(
    session: AsyncSession, admin: User, user_id: str, changes: AdminUserUpdate, *, now: datetime
) -> User:
    """Change a user's role or suspension. Suspension ends the user's sessions at once."""
    user = await _target(session, admin, user_id)
    if changes.role is not None and changes.role != user.role:
        record_action(
            session, admin, "user.role_changed", "user", user.id, before=user.role, after=changes.role
        )
        user.role = changes.role
    if changes.suspended is not None and changes.suspended != user.suspended:
        user.suspended = changes.suspended
        if changes.suspended:
            await auth.logout_all(session, user.id, now=now)
        record_action(
            session, admin, "user.suspended" if changes.suspended else "user.unsuspended", "user", user.id
        )
    return user


async def delete_user(session: AsyncSession, admin: User, user_id: str) -> None:
    user = await _target(session, admin, user_id)
    record_action(session, admin, "user.deleted", "user", user.id, username=user.username)
    await users.delete_account(session, user)
