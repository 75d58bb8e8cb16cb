"""a cancelled friend request is deleted, not kept as `cancelled`

Revision ID: 5c7e1a9d2b40
Revises: 8b2e4d6f1a35
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op


revision: str = "5c7e1a9d2b40"
down_revision: str | None = "8b2e4d6f1a35"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Cancelling now deletes the request (and, by cascade, its notification, which
    # cancelling already removed): remove those kept by earlier versions.
    op.execute("DELETE FROM friend_requests WHERE status = 'cancelled'")


def downgrade() -> None:
    pass  # the deleted requests are not restored
