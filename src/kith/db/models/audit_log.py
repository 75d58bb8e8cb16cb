from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from kith.db.base import Base, CreatedAtMixin, IdMixin, foreign_id


class AuditLogEntry(IdMixin, CreatedAtMixin, Base):
    """One moderator or admin action. The actor may later be deleted; the entry stays."""

    __tablename__ = "audit_log"

    actor_id: Mapped[str | None] = foreign_id("users.id", nullable=True, ondelete="SET NULL")
    # Kept apart from the foreign key so the entry still says who acted after deletion.
    actor_username: Mapped[str] = mapped_column(String(30))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(36))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
