from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kith.db.base import Base, IdMixin


class IdempotencyKey(IdMixin, Base):
    """A client's `Idempotency-Key` and, once the request finished, the answer it got.

    `owner` is the caller: a user id, or `ip:<address>` for anonymous requests.
    `request_hash` fingerprints method, path and body, so a key reused for another
    request is told apart. While `state` is `in_progress`, `claim` names the attempt
    that holds the key; `updated_at` is when it took it (a mark older than 60 s is left
    by a crashed worker and may be taken over).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("owner", "key", name="uq_idempotency_keys_owner_key"),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    owner: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    claim: Mapped[str] = mapped_column(String(32))
    response_status: Mapped[int | None]
    # JSON object of the headers the handler set (such as `Location`).
    response_headers: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
