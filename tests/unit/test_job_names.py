"""Job names are what a queue holds across a rolling upgrade: a job that moved modules keeps
the name the previous version queued it under."""

from __future__ import annotations

from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

import kith.main  # noqa: F401 - registers every job
from kith.auth import jobs as auth_jobs
from kith.core import jobs


class FakeSession:
    """Only what `enqueue` touches: the session's info dict."""

    def __init__(self) -> None:
        self.info: dict[str, object] = {}


def test_moved_jobs_keep_the_names_the_previous_version_queued() -> None:
    assert jobs.job_name(auth_jobs.touch_api_key) == "kith.users.jobs.touch_api_key"
    assert jobs.job_name(auth_jobs.reset_password_of) == "kith.auth.jobs.reset_password_of"
    session = FakeSession()
    jobs.enqueue(cast(AsyncSession, session), auth_jobs.touch_api_key, key_id="k")
    assert jobs.pending_jobs(cast(AsyncSession, session)) == [
        jobs.QueuedJob("kith.users.jobs.touch_api_key", {"key_id": "k"})
    ]


def test_other_jobs_are_named_by_module_and_function() -> None:
    assert jobs.job_name(auth_jobs.send_welcome_email) == "kith.auth.jobs.send_welcome_email"
