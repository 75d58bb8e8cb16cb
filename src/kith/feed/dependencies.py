"""Dependencies of the feed route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from kith.feed import jobs
from kith.feed.timeline import TimelineStore
from kith.http.session import get_resources


async def _timelines(request: Request) -> TimelineStore | None:
    # Async on purpose: FastAPI runs a plain `def` dependency in a worker thread.
    return jobs.timelines(get_resources(request))


# The warm timelines on Redis; None on the embedded default, where every page is SQL.
Timelines = Annotated[TimelineStore | None, Depends(_timelines)]
