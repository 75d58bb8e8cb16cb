"""Sessions checked a moment ago, so that most authenticated requests need no query to
know their caller is still let in (docs/architecture.md#the-session-cache).

An access token names its session; the session must be live and its user not suspended
on every request. `SessionCache` keeps, per session, the user's row as the last check saw
it, for at most `KITH_SESSION_CACHE_SECONDS`. Whatever changes a user row or a session
(logout, password change, suspension, a role or profile change, deletion) drops the
entries of the users it touched as soon as its transaction commits: in this process at
once, and in every other one through Redis (`RealtimeHub.notify_processes`). So the
cache is only used where every such change reaches it:

- on the embedded default (one process, no Redis), always;
- with Redis, while this process's subscription to the notices is healthy; after it
  was lost the cache starts empty;
- never with several workers and no Redis (no process would hear of another's changes).

Changes are seen by watching the ORM (`watch_changes`), not by each service calling
this module, so a new way of changing a user or a session cannot forget it.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from kith.db.models import AuthSession, User

# `session.info` key: the ids of users whose rows or sessions the transaction changed,
# or None inside the set's place when it changed some it cannot name (a bulk statement).
CHANGED_KEY = "kith_sessions_changed"
EVERYONE = "*"
# Beyond this many entries the cache starts again (about 1 KB each).
MAX_ENTRIES = 50_000

_caches: weakref.WeakSet[SessionCache] = weakref.WeakSet()


@dataclass(frozen=True, slots=True)
class _Entry:
    user_id: str
    expires_at: datetime
    checked_at: float
    row: dict[str, Any]


class SessionCache:
    """Session id → the user's row when the session was last found live."""

    def __init__(self, ttl_seconds: float, usable: Callable[[], bool]) -> None:
        self.ttl_seconds = ttl_seconds
        self._usable = usable
        self._entries: dict[str, _Entry] = {}
        # Bumped by every forget: a check that began before one must not store its answer.
        self.generation = 0
        _caches.add(self)

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0 and self._usable()

    def get(self, session_id: str, user_id: str, now: datetime) -> dict[str, Any] | None:
        """The user's row if `session_id` was found live (for `user_id`) a moment ago."""
        if not self.enabled:
            return None
        entry = self._entries.get(session_id)
        if entry is None:
            return None
        if (
            entry.user_id != user_id
            or entry.expires_at <= now
            or time.monotonic() - entry.checked_at > self.ttl_seconds
        ):
            self._entries.pop(session_id, None)
            return None
        return entry.row

    def put(self, session_id: str, expires_at: datetime, row: dict[str, Any], *, generation: int) -> None:
        """Remember a live session, unless something was forgotten since the check began."""
        if generation != self.generation or not self.enabled:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[session_id] = _Entry(str(row["id"]), expires_at, time.monotonic(), row)

    def forget(self, user_ids: Iterable[str]) -> None:
        ids = set(user_ids)
        self.generation += 1
        if EVERYONE in ids:
            self._entries.clear()
            return
        for session_id in [key for key, entry in self._entries.items() if entry.user_id in ids]:
            del self._entries[session_id]


def forget_in_process(user_ids: Iterable[str]) -> None:
    """Drop these users' entries (`*`: every entry) from every cache of this process."""
    ids = list(user_ids)
    for cache in list(_caches):
        cache.forget(ids)


def _changed(session: Session) -> set[str]:
    changed: set[str] = session.info.setdefault(CHANGED_KEY, set())
    return changed


def _note_flush(session: Session, _context: UOWTransaction, _instances: object) -> None:
    for instance in (*session.dirty, *session.deleted):
        if isinstance(instance, User):
            _changed(session).add(instance.id)
        elif isinstance(instance, AuthSession):
            _changed(session).add(instance.user_id)


def _note_statement(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ in (User, AuthSession):
        # A bulk statement: which users it touched is not known here.
        _changed(state.session).add(EVERYONE)


def watch_changes() -> None:
    """Note, on each session, the users whose rows or sessions it changes (idempotent)."""
    if not event.contains(Session, "before_flush", _note_flush):
        event.listen(Session, "before_flush", _note_flush)
        event.listen(Session, "do_orm_execute", _note_statement)


def changed_users(info: dict[Any, Any]) -> set[str]:
    """Take the users a committed transaction changed (see `CHANGED_KEY`) out of its info."""
    changed: set[str] = info.pop(CHANGED_KEY, set())
    return changed
