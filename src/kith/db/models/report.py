from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from kith.db.base import Base, CreatedAtMixin, IdMixin, foreign_id


class ReportTarget(StrEnum):
    post = "post"
    comment = "comment"
    user = "user"


class ReportStatus(StrEnum):
    open = "open"
    dismissed = "dismissed"
    resolved = "resolved"


def open_report_key(reporter_id: str, target_type: str, target_id: str) -> str:
    return f"{reporter_id}:{target_type}:{target_id}"


class Report(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_status_id", "status", "id"),)

    reporter_id: Mapped[str] = foreign_id("users.id")
    target_type: Mapped[ReportTarget] = mapped_column(String(16))
    # Not a foreign key: the report outlives the content it is about.
    target_id: Mapped[str] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(String(1000))
    status: Mapped[ReportStatus] = mapped_column(String(16), default=ReportStatus.open)
    # Set while open, NULL afterwards; unique, so a reporter has at most one open report
    # per target even when two requests race.
    open_key: Mapped[str | None] = mapped_column(String(96), unique=True)
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[str | None] = foreign_id("users.id", nullable=True, ondelete="SET NULL")
    resolution: Mapped[str | None] = mapped_column(String(32))
