"""List parameters and the `Link` header: the HTTP side of `kith.core.pagination`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, TypeVar

from fastapi import Depends, Query, Request, Response

from kith.core.pagination import DEFAULT_LIMIT, MAX_LIMIT, CursorPage, CursorParams, OffsetParams
from kith.core.urls import absolute_url

T = TypeVar("T")

CursorQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        description="Opaque: `next_cursor` of the previous page; anything else is 422 `invalid_cursor`.",
        # A format of its own, so tools know that not every string of 200 characters is one.
        json_schema_extra={"format": "cursor"},
    ),
]


class CursorPager:
    """A cursor list's request: its `params` for the service, and the page it answers with."""

    def __init__(self, request: Request, response: Response, params: CursorParams) -> None:
        self._request = request
        self._response = response
        self.params = params

    def page(self, items: Sequence[T], next_cursor: str | None) -> CursorPage[T]:
        """Wrap `items` and advertise the next page in an RFC 8288 `Link` header."""
        if next_cursor is not None:
            query = self._request.url.include_query_params(cursor=next_cursor, limit=self.params.limit).query
            url = absolute_url(f"{self._request.url.path}?{query}")
            self._response.headers["Link"] = f'<{url}>; rel="next"'
        return CursorPage[T](items=list(items), next_cursor=next_cursor)


# FastAPI runs a class or a plain `def` dependency in a worker thread; these async
# factories keep the parameters on the event loop (two thread hops less per list).


async def cursor_params(
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> CursorPager:
    return CursorPager(request, response, CursorParams.from_cursor(limit, cursor))


async def offset_params(
    page: Annotated[int, Query(ge=1, le=100_000, description="Page number, from 1.")] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = DEFAULT_LIMIT,
) -> OffsetParams:
    return OffsetParams(page, page_size)


CursorDep = Annotated[CursorPager, Depends(cursor_params)]
OffsetDep = Annotated[OffsetParams, Depends(offset_params)]
