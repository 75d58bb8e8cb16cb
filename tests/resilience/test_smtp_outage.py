"""SMTP down at registration and at password reset: the requests succeed, the e-mails wait.

The SMTP server is a real aiosmtpd server of the test's own, on a port where nothing
listens until the test starts it. Registration (201) and the reset request (202) answer
as usual; each e-mail is tried once, refused, and kept in `outgoing_emails`. The app
clock stands for the length of the outage: the periodic resend (`resend_kept_emails`,
called here as the periodic runner would) honours each e-mail's backoff against it, so
nothing waits in real time. The e-mails survive a restart of the app, arrive exactly
once when the server is back (even with two resends racing), and their tokens work;
token lifetimes count from when the tokens were issued; an e-mail is given up after
`KITH_EMAIL_RETRY_HOURS`.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

import httpx
import pytest
from aiosmtpd.controller import Controller
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from kith.core.config import Settings
from kith.db.models import OutgoingEmail
from kith.main import create_app
from kith.runtime.outbox import GAVE_UP_LABEL, resend_kept_emails
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.conftest import Mailbox
from tests.helpers import API, PASSWORD, assert_problem, login, register
from tests.resilience.invariants import violations

WELCOME = "Welcome to Kith"
VERIFY = "Confirm your e-mail address"
RESET = "Reset your Kith password"
NEW_PASSWORD = "a brand new passphrase"


@dataclass
class Outage:
    """An SMTP server that is down until `restore()`, and every attempt Kith made to reach it."""

    port: int
    mailbox: Mailbox = field(default_factory=Mailbox)
    attempts: Counter[str] = field(default_factory=Counter)
    controller: Controller | None = None

    def restore(self) -> None:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def delivered(self, address: str) -> Counter[str]:
        return Counter(str(message["Subject"]) for message in self.mailbox.to(address))


@pytest.fixture
def outage() -> Iterator[Outage]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = Outage(port=port)
    try:
        yield down
    finally:
        down.stop()


@dataclass
class Instance:
    resources: Resources
    client: httpx.AsyncClient


@asynccontextmanager
async def kith(settings: Settings, outage: Outage) -> AsyncIterator[Instance]:
    """One run of the app (a restart is leaving this and entering it again), its clock frozen."""
    application = create_app(settings.model_copy(update={"smtp_port": outage.port}))
    async with application.router.lifespan_context(application):
        resources: Resources = application.state.resources
        resources.clock.freeze()
        send = resources.mailer.send

        async def counted(message: EmailMessage) -> None:
            outage.attempts[str(message["Subject"])] += 1
            await send(message)

        resources.mailer.send = counted  # type: ignore[method-assign]
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Instance(resources, client)
        await asyncio.wait_for(resources.jobs.wait_idle(), timeout=30)


async def kept(resources: Resources) -> int:
    async with unit_of_work(resources, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(OutgoingEmail)) or 0)


async def settle(resources: Resources) -> None:
    await asyncio.wait_for(resources.jobs.wait_idle(), timeout=30)


async def request_reset(client: httpx.AsyncClient, address: str) -> httpx.Response:
    return await client.post(f"{API}/auth/password-reset", json={"email": address})


async def reset_password(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )


async def verify(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{API}/auth/verify-email", json={"token": token})


@pytest.mark.timeout(90)
async def test_mail_kept_during_an_outage_is_delivered_once_after_a_restart(
    settings: Settings, outage: Outage
) -> None:
    address = "late@example.com"
    async with kith(settings, outage) as first:
        assert (await register(first.client, "late")).status_code == 201
        assert (await request_reset(first.client, address)).status_code == 202
        await settle(first.resources)
        # Each e-mail was tried once, refused, and kept; nothing retries in memory.
        assert outage.attempts == Counter({WELCOME: 1, VERIFY: 1, RESET: 1})
        assert await kept(first.resources) == 3
    # The process is gone; SMTP comes back most of an hour later, seen by a new process.
    outage.restore()
    async with kith(settings, outage) as second:
        second.resources.clock.advance(minutes=55)
        # Two resend rounds at once (two workers when Redis is down): each e-mail goes once.
        rounds = await asyncio.gather(
            resend_kept_emails(second.resources), resend_kept_emails(second.resources)
        )
        assert sum(rounds) == 3
        assert await resend_kept_emails(second.resources) == 0
        assert outage.delivered(address) == Counter({WELCOME: 1, VERIFY: 1, RESET: 1})
        assert len(outage.mailbox.messages) == 3
        assert await kept(second.resources) == 0

        # The late tokens work: both were issued 55 minutes ago (reset tokens live 60).
        assert (await reset_password(second.client, outage.mailbox.token(address, RESET))).status_code == 204
        await login(second.client, "late", NEW_PASSWORD)
        assert (await verify(second.client, outage.mailbox.token(address, VERIFY))).status_code == 204
        await settle(second.resources)
        assert len(outage.mailbox.messages) == 3, "no e-mail is sent twice"
    assert await violations(settings.database_url, settings.media_root) == []


@pytest.mark.timeout(90)
async def test_kept_mail_backs_off_and_tokens_live_from_their_issue(
    settings: Settings, outage: Outage
) -> None:
    address = "slow@example.com"
    async with kith(settings, outage) as app:
        clock = app.resources.clock
        assert (await register(app.client, "slow")).status_code == 201
        assert (
            await app.client.post(f"{API}/auth/password-reset", json={"email": address})
        ).status_code == 202
        await settle(app.resources)
        assert outage.attempts == Counter({WELCOME: 1, VERIFY: 1, RESET: 1})

        # Not due yet: the round tries nothing. Due: one more attempt each, still refused.
        assert await resend_kept_emails(app.resources) == 0
        assert sum(outage.attempts.values()) == 3
        clock.advance(seconds=settings.job_retry_base_seconds)
        assert await resend_kept_emails(app.resources) == 0
        assert outage.attempts == Counter({WELCOME: 2, VERIFY: 2, RESET: 2})
        assert await resend_kept_emails(app.resources) == 0  # the delay doubled: not due again
        assert sum(outage.attempts.values()) == 6
        assert await kept(app.resources) == 3

        # Two hours down: longer than a reset token lives, far shorter than a verification token.
        clock.advance(hours=2)
        outage.restore()
        assert await resend_kept_emails(app.resources) == 3
        assert outage.delivered(address) == Counter({WELCOME: 1, VERIFY: 1, RESET: 1})
        assert_problem(
            await reset_password(app.client, outage.mailbox.token(address, RESET)), 400, "invalid_token"
        )
        await login(app.client, "slow", PASSWORD)  # the password is unchanged
        assert (await verify(app.client, outage.mailbox.token(address, VERIFY))).status_code == 204

        # Asking again, with SMTP up, gives a fresh token that works.
        assert (
            await app.client.post(f"{API}/auth/password-reset", json={"email": address})
        ).status_code == 202
        await settle(app.resources)
        assert outage.delivered(address)[RESET] == 2
        assert (await reset_password(app.client, outage.mailbox.token(address, RESET))).status_code == 204
        assert await kept(app.resources) == 0
    assert await violations(settings.database_url, settings.media_root) == []


def _given_up() -> float:
    return REGISTRY.get_sample_value("kith_jobs_failed_total", {"job": GAVE_UP_LABEL}) or 0.0


@pytest.mark.timeout(60)
async def test_kept_mail_is_given_up_after_the_retry_window(settings: Settings, outage: Outage) -> None:
    before = _given_up()
    async with kith(settings, outage) as app:
        assert (await register(app.client, "gone")).status_code == 201
        await settle(app.resources)
        assert await kept(app.resources) == 2
        app.resources.clock.advance(hours=settings.email_retry_hours, seconds=-1)
        # Still down a second before the window closes: one more refused attempt each, both kept.
        assert await resend_kept_emails(app.resources) == 0
        assert await kept(app.resources) == 2
        app.resources.clock.advance(seconds=2)
        outage.restore()
        assert await resend_kept_emails(app.resources) == 0
        assert await kept(app.resources) == 0
        assert _given_up() == before + 2
        assert outage.mailbox.messages == []
        assert outage.attempts == Counter({WELCOME: 2, VERIFY: 2})
