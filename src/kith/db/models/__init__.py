"""Every table, imported here so metadata and Alembic see them all."""

from kith.db.models.api_key import ApiKey
from kith.db.models.audit_log import AuditLogEntry
from kith.db.models.auth_session import AuthSession, RefreshToken
from kith.db.models.one_time_token import OneTimeToken, TokenPurpose
from kith.db.models.user import Role, User

__all__ = [
    "ApiKey",
    "AuditLogEntry",
    "AuthSession",
    "OneTimeToken",
    "RefreshToken",
    "Role",
    "TokenPurpose",
    "User",
]
