from __future__ import annotations

from sqlalchemy import Select, select

from kith.db.models import AuditLogEntry


def audit_log() -> Select[AuditLogEntry]:
    return select(AuditLogEntry)
