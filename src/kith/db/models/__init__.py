"""Every table, imported here so metadata and Alembic see them all."""

from kith.db.models.api_key import ApiKey
from kith.db.models.audit_log import AuditLogEntry
from kith.db.models.auth_session import AuthSession, RefreshToken
from kith.db.models.export import Export, ExportStatus
from kith.db.models.idempotency_key import IdempotencyKey
from kith.db.models.media import Media
from kith.db.models.notification import Notification, NotificationType
from kith.db.models.oauth import OAuthApp, OAuthGrant, OAuthToken
from kith.db.models.one_time_token import OneTimeToken, TokenPurpose
from kith.db.models.outgoing_email import OutgoingEmail
from kith.db.models.post import Comment, Like, Post, Visibility
from kith.db.models.report import Report, ReportStatus, ReportTarget, open_report_key
from kith.db.models.social import Block, FriendRequest, FriendRequestStatus, Friendship, pair_key
from kith.db.models.user import STAFF_ROLES, Role, User

__all__ = [
    "STAFF_ROLES",
    "ApiKey",
    "AuditLogEntry",
    "AuthSession",
    "Block",
    "Comment",
    "Export",
    "ExportStatus",
    "FriendRequest",
    "FriendRequestStatus",
    "Friendship",
    "IdempotencyKey",
    "Like",
    "Media",
    "Notification",
    "NotificationType",
    "OAuthApp",
    "OAuthGrant",
    "OAuthToken",
    "OneTimeToken",
    "OutgoingEmail",
    "Post",
    "RefreshToken",
    "Report",
    "ReportStatus",
    "ReportTarget",
    "Role",
    "TokenPurpose",
    "User",
    "Visibility",
    "open_report_key",
    "pair_key",
]
