"""Every query on reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kith.db.models import Report, ReportStatus, User


async def open_report_of(session: AsyncSession, open_key: str) -> Report | None:
    return await session.scalar(select(Report).where(Report.open_key == open_key))


def reports_with_reporters(status: ReportStatus) -> Select[Report, User]:
    reporter = aliased(User, name="reporter")
    return (
        select(Report, reporter)
        .join(reporter, reporter.id == Report.reporter_id)
        .where(Report.status == status)
    )


async def report_with_reporter(session: AsyncSession, report_id: str) -> tuple[Report, User] | None:
    reporter = aliased(User, name="reporter")
    row = (
        await session.execute(
            select(Report, reporter)
            .join(reporter, reporter.id == Report.reporter_id)
            .where(Report.id == report_id)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def close_reports(
    session: AsyncSession,
    report: Report,
    *,
    with_others_on_target: bool,
    status: ReportStatus,
    resolution: str,
    moderator_id: str,
    now: datetime,
) -> list[str]:
    """Close `report` (and the other open reports on its target) if still open; returns the ids closed.

    One conditional statement: of two moderators acting at once, the second finds
    nothing open, and rows are always locked in the same order (no deadlock).
    """
    which = Report.id == report.id
    if with_others_on_target:
        which = or_(
            which, (Report.target_type == report.target_type) & (Report.target_id == report.target_id)
        )
    statement = (
        update(Report)
        .where(which, Report.status == ReportStatus.open)
        .values(
            status=status, open_key=None, resolution=resolution, resolved_by_id=moderator_id, resolved_at=now
        )
        .returning(Report.id)
        .execution_options(synchronize_session="fetch")
    )
    return list((await session.scalars(statement)).all())


async def users_by_id(session: AsyncSession, user_ids: Sequence[str]) -> list[User]:
    if not user_ids:
        return []
    return list((await session.scalars(select(User).where(User.id.in_(user_ids)))).all())
