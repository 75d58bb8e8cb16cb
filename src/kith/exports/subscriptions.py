"""How the exports react to what other domains announce: an account's deletion takes its
archives' files with it (the rows go through the cascade)."""

from __future__ import annotations

from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.config import Settings
from kith.exports import repository
from kith.exports.archive import delete_archives
from kith.runtime.events import Subscribers
from kith.runtime.transaction import after_commit, resources_of
from kith.users.events import AccountDeleting


def subscribe(subscribers: Subscribers, settings: Settings) -> None:
    subscribers.on(AccountDeleting, account_deleting)


async def account_deleting(session: AsyncSession, event: AccountDeleting) -> None:
    """Delete the account's archives once its deletion commits (an archive being built at
    that moment is removed by its builder, which finds its export gone)."""
    export_ids = await repository.ids_of_user(session, event.user_id)
    if export_ids:
        after_commit(session, partial(delete_archives, resources_of(session).settings, export_ids))
