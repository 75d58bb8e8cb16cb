"""The pages that problem `type` URIs point to: one short explanation per error code.

The codes and their explanations come from the `DomainError` classes (`problem_types`). A
page is plain HTML that loads nothing (the edge gives it the API's `default-src 'none'`).
"""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from kith.core.errors import NotFound, problem_types

router = APIRouter(include_in_schema=False)
PAGE = (
    '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    "<title>{title}: a problem type of the Kith API</title>\n</head>\n"
    "<body>\n<main>\n<h1>{title}</h1>\n<p>{description}</p>\n"
    '<p>The API\'s errors are described at <a href="/docs">/docs</a>.</p>\n</main>\n</body>\n</html>\n'
)


@router.get("/problems/{code}", operation_id="getProblemType", response_class=HTMLResponse)
async def problem_page(code: str) -> HTMLResponse:
    """What the problem type `code` means, for a person following a problem's `type` URI."""
    description = problem_types().get(code)
    if description is None:
        raise NotFound("No such problem type.")
    title = html.escape(code)
    return HTMLResponse(PAGE.format(title=title, description=html.escape(description)))
