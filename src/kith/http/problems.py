"""The pages that problem `type` URIs point to: one short explanation per error code.

The codes and their explanations come from the `DomainError` classes (`problem_types`).
"""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from kith.core.errors import NotFound, problem_types

router = APIRouter(include_in_schema=False)


@router.get("/problems/{code}", operation_id="getProblemType", response_class=HTMLResponse)
async def problem_page(code: str) -> HTMLResponse:
    description = problem_types().get(code)
    if description is None:
        raise NotFound("No such problem type.")
    title = html.escape(code)
    return HTMLResponse(
        f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{html.escape(description)}</p>"
    )
