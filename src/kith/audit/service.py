"""Recording staff actions and reading them back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.pagination import CursorParams
from kith.db.models import AuditLogEntry, User


def record_action(
    session: AsyncSession,
    actor: User,
    action: str,
    target_type: str,
    target_id: str,
    **details: Any,
) -> None:
    """Write an audit log entry in the same transaction as the action it records."""
    session.add(
        AuditLogEntry(
            actor_id=actor.id,
            actor_username=actor.username,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details,
        )
    )


async def audit_log(session: AsyncSession, params: CursorParams) -> tuple[list[AuditLogEntry], str | None]:
    """One page of the log, newest first."""
    return await params.fetch(session, select(AuditLogEntry), AuditLogEntry.id)
