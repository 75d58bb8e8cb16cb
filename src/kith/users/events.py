"""What the users domain announces (`kith.runtime.events`); the exports subscribe."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AccountDeleting:
    """An account is being deleted, in this transaction: its rows go with it (cascades),
    and whatever it keeps outside the database must follow once the transaction commits."""

    user_id: str
