"""Dependencies of the feed route."""

from __future__ import annotations

from typing import Annotated, NamedTuple

from fastapi import Depends

from kith.core.breaker import Breaker
from kith.feed import jobs
from kith.feed.timeline import TimelineStore
from kith.http.deps import provided


class TimelineAccess(NamedTuple):
    """The warm timelines on Redis (None on the embedded default, where every page is SQL)
    and the breaker that is open while Redis is failing: one dependency of the feed route."""

    store: TimelineStore | None
    breaker: Breaker


Timelines = Annotated[
    TimelineAccess,
    Depends(provided(lambda resources: TimelineAccess(jobs.timelines(resources), resources.redis_breaker))),
]
