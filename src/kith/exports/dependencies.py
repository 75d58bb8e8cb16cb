"""Loading an export for a route: the caller's own, else 404."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from kith.auth.dependencies import CurrentUser
from kith.db.models import Export
from kith.exports import service
from kith.http.session import DbSession


async def owned_export(export_id: str, user: CurrentUser, session: DbSession) -> Export:
    """The caller's export `export_id`; another user's, or none, is 404 `export_not_found`."""
    return await service.owned_export(session, user, export_id)


OwnedExport = Annotated[Export, Depends(owned_export)]
