from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kith.db.base import Base, CreatedAtMixin, IdMixin, foreign_id


class ExportStatus(StrEnum):
    queued = "queued"
    running = "running"
    ready = "ready"
    failed = "failed"
    expired = "expired"


class Export(IdMixin, CreatedAtMixin, Base):
    """An archive of one account's data (docs/export.md), built in the background.

    The zip is kept on disk as `<KITH_EXPORT_DIR>/<id>.zip` while the export is `ready`,
    and deleted when it expires or the account is deleted (the row goes with the account).
    `link_hash` is the hash of the one outstanding single-use download link, if any.
    """

    __tablename__ = "exports"
    __table_args__ = (Index("ix_exports_status_expires_at", "status", "expires_at"),)

    user_id: Mapped[str] = foreign_id("users.id")
    status: Mapped[ExportStatus] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    link_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    link_expires_at: Mapped[datetime | None]
