"""Leave a failing dependency alone for a while after it fails.

Every call to a frozen Redis waits for its socket timeout before it fails. Without a
breaker each request that publishes a live event, queues a job or reads the feed cache
would pay that timeout, once per call; with one, an outage costs one timeout per
`retry_seconds` and the calls in between take their fallback at once.
"""

from __future__ import annotations

import time


class Breaker:
    """Open for `retry_seconds` after a failure: callers skip the dependency meanwhile."""

    def __init__(self, retry_seconds: float) -> None:
        self.retry_seconds = retry_seconds
        self._until = 0.0

    @property
    def open(self) -> bool:
        return time.monotonic() < self._until

    def failed(self) -> None:
        self._until = time.monotonic() + self.retry_seconds

    def succeeded(self) -> None:
        self._until = 0.0
