"""E-mails that outlive an SMTP outage: kept in the database, resent by a periodic task.

A job that sends an e-mail calls `send_or_keep`. When the SMTP server does not take the
message (down, unreachable, refusing it), the message is kept in `outgoing_emails` and
the job ends normally: the e-mail no longer depends on the process that tried it.
`resend_kept_emails` runs every `KITH_EMAIL_RETRY_INTERVAL_SECONDS` (in `kith serve` on
the embedded default, in `kith worker` with Redis) and tries each kept e-mail again when
it is due: the delay doubles from `KITH_JOB_RETRY_BASE_SECONDS` up to
`KITH_JOB_RETRY_MAX_SECONDS`, on the app clock. A delivered e-mail is deleted; one still
undelivered `KITH_EMAIL_RETRY_HOURS` after it was first tried is given up (logged
`email_gave_up`) and deleted.

Every e-mail goes to an account's address, and none outlives the account
(docs/security.md#privacy): deleting an account deletes the kept e-mails to its address in
the same transaction (`forget_kept_emails_to`); a message whose address no account holds
any longer is not kept, and each resend round first deletes any such message (one kept by
a job that ran while the account was being deleted).

An attempt is claimed first, in its own short transaction (see `OutgoingEmail`): a
worker that dies while sending leaves the row to be tried again once the claim lapses,
and two workers never send one row at once. A message accepted by the server whose row
then cannot be deleted is sent again: delivery is at least once, with the same
`Message-ID` each time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email import message_from_string, policy
from email.message import EmailMessage
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.config import Settings
from kith.core.metrics import JOBS_FAILED
from kith.db.models import OutgoingEmail, User
from kith.runtime.periodic import periodic
from kith.runtime.transaction import unit_of_work

if TYPE_CHECKING:
    from kith.runtime.resources import Resources

log = structlog.get_logger("kith.mail")

RESEND_BATCH = 100
_MAX_BACKOFF_EXPONENT = 30
# The label under which given-up e-mails count in `kith_jobs_failed_total`.
# The metric label operators alert on; it keeps the module path it had before the move.
GAVE_UP_LABEL = "kith.core.outbox.email"


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    """How long after its `attempts`-th failed attempt a kept e-mail is tried again."""
    exponent = min(max(attempts - 1, 0), _MAX_BACKOFF_EXPONENT)
    return timedelta(
        seconds=min(settings.job_retry_base_seconds * 2.0**exponent, settings.job_retry_max_seconds)
    )


def claim_lapse(settings: Settings) -> timedelta:
    """How long a claimed attempt may take before another worker may try the row again."""
    return timedelta(seconds=2 * settings.smtp_timeout_seconds + 30)


async def send_or_keep(resources: Resources, message: EmailMessage) -> None:
    """Send `message` now; if the SMTP server does not take it, keep it for `resend_kept_emails`.

    Raises only when the message can be neither sent nor kept (the database is down too),
    so the job that called this is retried.
    """
    try:
        await resources.mailer.send(message)
    except Exception as exc:
        now = resources.clock.now()
        recipient = str(message["To"])
        async with unit_of_work(resources) as session:
            if not await session.scalar(select(exists().where(User.email == recipient))):
                # The account was deleted meanwhile: its address is not kept.
                log.info("email_dropped", subject=message["Subject"], error=type(exc).__name__)
                return
            session.add(
                OutgoingEmail(
                    recipient=recipient,
                    subject=str(message["Subject"])[:255],
                    message=message.as_string(),
                    attempts=1,
                    created_at=now,
                    next_attempt_at=now + retry_delay(resources.settings, 1),
                )
            )
        log.warning("email_kept", subject=message["Subject"], error=type(exc).__name__)


async def forget_kept_emails_to(session: AsyncSession, address: str) -> None:
    """Delete the kept e-mails to `address`, in `session`'s transaction (account deletion)."""
    await session.execute(
        delete(OutgoingEmail)
        .where(OutgoingEmail.recipient == address)
        .execution_options(synchronize_session=False)
    )


def _retry_interval(settings: Settings) -> float:
    return settings.email_retry_interval_seconds


async def resend_kept_emails(resources: Resources) -> int:
    """Try each kept e-mail that is due again; give up those past `KITH_EMAIL_RETRY_HOURS`.

    Returns how many were delivered. Safe to run in several processes at once.
    """
    settings = resources.settings
    now = resources.clock.now()
    async with unit_of_work(resources) as session:
        # Left by a job that kept its message while the account was being deleted.
        await session.execute(
            delete(OutgoingEmail)
            .where(~exists().where(User.email == OutgoingEmail.recipient))
            .execution_options(synchronize_session=False)
        )
        expired = await session.scalars(
            delete(OutgoingEmail)
            .where(OutgoingEmail.created_at <= now - timedelta(hours=settings.email_retry_hours))
            .returning(OutgoingEmail.subject)
        )
        given_up = list(expired.all())
    for subject in given_up:
        JOBS_FAILED.labels(GAVE_UP_LABEL).inc()
        log.error("email_gave_up", subject=subject)
    async with unit_of_work(resources, write=False) as session:
        due = (
            await session.execute(
                select(OutgoingEmail.id, OutgoingEmail.attempts)
                .where(OutgoingEmail.next_attempt_at <= now)
                .order_by(OutgoingEmail.next_attempt_at)
                .limit(RESEND_BATCH)
            )
        ).all()
    delivered = 0
    for email_id, attempts in due:
        delivered += await _attempt(resources, email_id, attempts, now)
    return delivered


# Registered here rather than with the decorator, so callers keep the `-> int` signature.
periodic(_retry_interval)(resend_kept_emails)


async def _attempt(resources: Resources, email_id: str, attempts: int, now: datetime) -> int:
    """One attempt at a kept e-mail, if this process wins its claim. 1 if it was delivered."""
    settings = resources.settings
    async with unit_of_work(resources) as session:
        claimed = await session.scalar(
            update(OutgoingEmail)
            .where(OutgoingEmail.id == email_id, OutgoingEmail.attempts == attempts)
            .values(attempts=attempts + 1, next_attempt_at=now + claim_lapse(settings))
            .returning(OutgoingEmail.message)
        )
    if claimed is None:
        return 0  # delivered or taken by another worker meanwhile
    message = message_from_string(claimed, policy=policy.default)
    assert isinstance(message, EmailMessage)
    try:
        await resources.mailer.send(message)
    except Exception as exc:
        async with unit_of_work(resources) as session:
            await session.execute(
                update(OutgoingEmail)
                .where(OutgoingEmail.id == email_id, OutgoingEmail.attempts == attempts + 1)
                .values(next_attempt_at=now + retry_delay(settings, attempts + 1))
            )
        log.warning(
            "email_retry_failed", subject=message["Subject"], attempt=attempts + 1, error=type(exc).__name__
        )
        return 0
    async with unit_of_work(resources) as session:
        await session.execute(delete(OutgoingEmail).where(OutgoingEmail.id == email_id))
    log.info("email_resent", subject=message["Subject"], attempt=attempts + 1)
    return 1
