"""Dependencies of the feed route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from kith.feed import jobs
from kith.feed.timeline import TimelineStore
from kith.http.deps import provided

# The warm timelines on Redis; None on the embedded default, where every page is SQL.
Timelines = Annotated[TimelineStore | None, Depends(provided(jobs.timelines))]
