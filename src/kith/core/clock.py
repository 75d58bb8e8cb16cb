"""The time as the application sees it; tests move it forward instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta(0)
        self._frozen_at: datetime | None = None

    def now(self) -> datetime:
        return (self._frozen_at or datetime.now(UTC)) + self.offset

    def advance(self, **delta: float) -> None:
        """Move this clock forward, for example `clock.advance(hours=25)`."""
        self.offset += timedelta(**delta)

    def freeze(self) -> None:
        """Stop this clock where it is: from now on only `advance` moves it (tests of exact
        boundaries, which real time passing under load would otherwise cross)."""
        self._frozen_at = datetime.now(UTC)
