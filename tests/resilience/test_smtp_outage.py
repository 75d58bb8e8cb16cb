"""SMTP down at registration and at password reset: the requests succeed, the e-mails wait.

The SMTP server is a real aiosmtpd server of the test's own, on a port where nothing
listens until the test starts it. Registration (201) and the reset request (202) answer
as usual while every delivery attempt is refused; the app clock is moved forward to
stand for the length of the outage (the retries are scheduled against it, so nothing
waits in real time), and each e-mail must still arrive exactly once when the server
comes up, with tokens that work. An e-mail is given up only after
`KITH_EMAIL_RETRY_HOURS`; the tokens' lifetimes count from when they were issued.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import EmailMessage

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from prometheus_client import REGISTRY

from kith.core.config import Settings
from kith.core.resources import Resources
from kith.main import create_app
from tests.conftest import Mailbox
from tests.helpers import API, PASSWORD, assert_problem, login, register
from tests.resilience.invariants import violations

WELCOME = "Welcome to Kith"
VERIFY = "Confirm your e-mail address"
RESET = "Reset your Kith password"
NEW_PASSWORD = "a brand new passphrase"
VERIFY_JOB = "kith.auth.jobs.send_verification_email"


@dataclass
class Outage:
    """An SMTP server that is down until `restore()`, and the attempts Kith made to reach it."""

    mailbox: Mailbox
    port: int
    attempts: Counter[str]
    changed: asyncio.Condition
    controller: Controller | None = None

    def restore(self) -> None:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    async def failed_at_least(self, count: int, *subjects: str) -> None:
        """Wait until each of `subjects` has had `count` delivery attempts (bounded)."""
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: all(self.attempts[s] >= count for s in subjects)), timeout=30
            )


@pytest.fixture
def outage() -> Iterator[Outage]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = Outage(mailbox=Mailbox(), port=port, attempts=Counter(), changed=asyncio.Condition())
    try:
        yield down
    finally:
        down.stop()


@pytest.fixture
async def smtp_down_app(settings: Settings, outage: Outage) -> AsyncIterator[FastAPI]:
    application = create_app(settings.model_copy(update={"smtp_port": outage.port}))
    async with application.router.lifespan_context(application):
        resources: Resources = application.state.resources
        send = resources.mailer.send

        async def counted(message: EmailMessage) -> None:
            try:
                await send(message)
            finally:
                async with outage.changed:
                    outage.attempts[str(message["Subject"])] += 1
                    outage.changed.notify_all()

        resources.mailer.send = counted  # type: ignore[method-assign]
        yield application


@pytest.fixture
async def down_client(smtp_down_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=smtp_down_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def _subjects(mailbox: Mailbox, address: str) -> Counter[str]:
    return Counter(str(message["Subject"]) for message in mailbox.to(address))


def _gave_up(job: str) -> float:
    return REGISTRY.get_sample_value("kith_jobs_failed_total", {"job": job}) or 0.0


async def _settle(resources: Resources) -> None:
    await asyncio.wait_for(resources.jobs.wait_idle(), timeout=30)


@pytest.mark.timeout(90)
async def test_mail_sent_during_an_outage_arrives_once_when_smtp_is_back(
    smtp_down_app: FastAPI, down_client: httpx.AsyncClient, outage: Outage, settings: Settings
) -> None:
    resources: Resources = smtp_down_app.state.resources
    clock = resources.clock
    clock.freeze()
    address = "late@example.com"
    assert (await register(down_client, "late")).status_code == 201
    response = await down_client.post(f"{API}/auth/password-reset", json={"email": address})
    assert response.status_code == 202

    # Every attempt is refused; past the attempts other jobs get, the e-mails keep trying.
    await outage.failed_at_least(2, WELCOME, VERIFY, RESET)
    clock.advance(minutes=55)  # the outage lasts most of an hour
    await outage.failed_at_least(settings.job_max_attempts + 2, WELCOME, VERIFY, RESET)
    assert outage.mailbox.messages == []

    outage.restore()
    await _settle(resources)
    assert _subjects(outage.mailbox, address) == Counter({WELCOME: 1, VERIFY: 1, RESET: 1})
    assert len(outage.mailbox.messages) == 3

    # The late tokens work: the reset token (60 min) and the verification token (7 days)
    # were issued 55 minutes ago, when the requests were made.
    reset_token = outage.mailbox.token(address, RESET)
    confirm = await down_client.post(
        f"{API}/auth/password-reset/confirm", json={"token": reset_token, "new_password": NEW_PASSWORD}
    )
    assert confirm.status_code == 204, confirm.text
    await login(down_client, "late", NEW_PASSWORD)
    verify = await down_client.post(
        f"{API}/auth/verify-email", json={"token": outage.mailbox.token(address, VERIFY)}
    )
    assert verify.status_code == 204, verify.text
    await _settle(resources)
    assert len(outage.mailbox.messages) == 3, "no e-mail is sent twice"
    assert await violations(settings.database_url, settings.media_root) == []


@pytest.mark.timeout(90)
async def test_token_lifetimes_count_from_issue_not_from_delivery(
    smtp_down_app: FastAPI, down_client: httpx.AsyncClient, outage: Outage, settings: Settings
) -> None:
    resources: Resources = smtp_down_app.state.resources
    clock = resources.clock
    clock.freeze()
    address = "slow@example.com"
    assert (await register(down_client, "slow")).status_code == 201
    response = await down_client.post(f"{API}/auth/password-reset", json={"email": address})
    assert response.status_code == 202
    await outage.failed_at_least(2, VERIFY, RESET)
    # Two hours down: longer than a reset token lives, far shorter than a verification token.
    clock.advance(hours=2)
    await outage.failed_at_least(settings.job_max_attempts + 2, VERIFY, RESET)

    outage.restore()
    await _settle(resources)
    assert _subjects(outage.mailbox, address) == Counter({WELCOME: 1, VERIFY: 1, RESET: 1})
    late_reset = await down_client.post(
        f"{API}/auth/password-reset/confirm",
        json={"token": outage.mailbox.token(address, RESET), "new_password": NEW_PASSWORD},
    )
    assert_problem(late_reset, 400, "invalid_token")
    await login(down_client, "slow", PASSWORD)  # the password is unchanged
    verify = await down_client.post(
        f"{API}/auth/verify-email", json={"token": outage.mailbox.token(address, VERIFY)}
    )
    assert verify.status_code == 204, verify.text

    # Asking again, with SMTP up, gives a fresh token that works.
    response = await down_client.post(f"{API}/auth/password-reset", json={"email": address})
    assert response.status_code == 202
    await _settle(resources)
    assert _subjects(outage.mailbox, address)[RESET] == 2
    confirm = await down_client.post(
        f"{API}/auth/password-reset/confirm",
        json={"token": outage.mailbox.token(address, RESET), "new_password": NEW_PASSWORD},
    )
    assert confirm.status_code == 204, confirm.text


@pytest.mark.timeout(60)
async def test_mail_is_given_up_after_the_retry_window(
    smtp_down_app: FastAPI, down_client: httpx.AsyncClient, outage: Outage, settings: Settings
) -> None:
    resources: Resources = smtp_down_app.state.resources
    clock = resources.clock
    clock.freeze()
    failed_before = _gave_up(VERIFY_JOB)
    assert (await register(down_client, "gone")).status_code == 201
    await outage.failed_at_least(2, WELCOME, VERIFY)
    clock.advance(hours=settings.email_retry_hours, seconds=1)
    await _settle(resources)  # returns only because the jobs gave up
    assert _gave_up(VERIFY_JOB) == failed_before + 1
    outage.restore()
    assert outage.mailbox.messages == []
