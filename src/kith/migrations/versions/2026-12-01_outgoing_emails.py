"""outgoing e-mails kept while SMTP is down

Revision ID: 8b2e4d6f1a35
Revises: 3f1c2a9b7e10
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "8b2e4d6f1a35"
down_revision: str | None = "3f1c2a9b7e10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outgoing_emails",
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outgoing_emails")),
    )
    with op.batch_alter_table("outgoing_emails", schema=None) as batch_op:
        batch_op.create_index("ix_outgoing_emails_next_attempt_at", ["next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outgoing_emails", schema=None) as batch_op:
        batch_op.drop_index("ix_outgoing_emails_next_attempt_at")

    op.drop_table("outgoing_emails")
