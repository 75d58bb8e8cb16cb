"""Small declarative pieces for routes: cache headers."""

from __future__ import annotations

from fastapi import Request, Response


async def no_store(response: Response) -> None:
    """Router dependency: responses hold credentials or private data; never cache them."""
    response.headers["Cache-Control"] = "no-store"


def public_url(request: Request, path: str) -> str:
    """An absolute URL on the configured public URL, never on the request's `Host`."""
    settings = request.app.state.settings
    return f"{settings.public_url}{path}"
