from __future__ import annotations

from kith.core.jobs import job
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from kith.users import repository


@job
async def touch_api_key(resources: Resources, *, key_id: str) -> None:
    """Record when an API key was last used."""
    async with unit_of_work(resources) as session:
        await repository.touch_api_key(session, key_id, resources.clock.now())
