"""Validating dependencies of the social routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from kith.auth.dependencies import CurrentUser
from kith.db.models import User
from kith.http.session import DbSession
from kith.social import service


async def visible_user(user_id: str, viewer: CurrentUser, session: DbSession) -> User:
    """The user named in the path, or 404 `user_not_found` if unknown or hidden from the caller."""
    return await service.visible_user(session, viewer, user_id)


VisibleUser = Annotated[User, Depends(visible_user)]
