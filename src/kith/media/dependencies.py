"""Dependencies of the media routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from kith.auth.dependencies import RequestCredentials, current_principal
from kith.db.models import User
from kith.http.deps import Transaction


async def uploader(request: Request, transaction: Transaction, credentials: RequestCredentials) -> User:
    """`CurrentUser` for uploads, checked in a short read-only transaction of its own.

    The request's usual session would stay open while the body streams in and the image
    is re-encoded: a slow client would hold a database connection (and, on SQLite, the
    write lock) for as long as it liked. The upload's row gets its own short transaction.
    """
    async with transaction(write=False) as session:
        principal = await current_principal(request, session, credentials)
    return principal.user


Uploader = Annotated[User, Depends(uploader)]
