"""E-mails of the account flows, sent in the background after the request commits.

An e-mail the SMTP server does not take is kept in the database and sent again later
(`kith.runtime.outbox`), for up to `KITH_EMAIL_RETRY_HOURS`, across restarts. The tokens
in a late e-mail keep the lifetime they got when they were issued.
"""

from __future__ import annotations

from datetime import timedelta

from kith.auth import repository
from kith.core.jobs import enqueue, job, job_as
from kith.core.mail import compose
from kith.core.urls import API_PREFIX
from kith.db.models import TokenPurpose
from kith.runtime.outbox import send_or_keep
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work


@job
async def send_verification_email(resources: Resources, *, to: str, name: str, token: str) -> None:
    settings = resources.settings
    link = f"{settings.public_url}/verify-email?token={token}"
    body = (
        f"Hello {name},\n\n"
        "Please confirm your e-mail address for Kith by opening this link:\n\n"
        f"{link}\n\n"
        f"Or send this token to POST {API_PREFIX}/auth/verify-email: {token}\n\n"
        f"The link expires in {settings.email_verification_ttl_hours // 24} days. "
        "If you did not create an account, ignore this message.\n"
    )
    await send_or_keep(resources, compose(settings, to, "Confirm your e-mail address", body))


@job
async def send_welcome_email(resources: Resources, *, to: str, name: str) -> None:
    body = (
        f"Hello {name},\n\nWelcome to Kith. Find your friends, share what you are up to, and keep in touch.\n"
    )
    await send_or_keep(resources, compose(resources.settings, to, "Welcome to Kith", body))


@job
async def send_password_reset_email(resources: Resources, *, to: str, name: str, token: str) -> None:
    settings = resources.settings
    link = f"{settings.public_url}/reset-password?token={token}"
    body = (
        f"Hello {name},\n\n"
        "Someone asked to reset the password of your Kith account. To choose a new one, "
        "open this link:\n\n"
        f"{link}\n\n"
        f"Or send this token to POST {API_PREFIX}/auth/password-reset/confirm: {token}\n\n"
        f"It expires in {settings.password_reset_ttl_minutes} minutes and works once. "
        "If it was not you, ignore this message; your password is unchanged.\n"
    )
    await send_or_keep(resources, compose(settings, to, "Reset your Kith password", body))


@job
async def reset_password_of(resources: Resources, *, email: str) -> None:
    """E-mail a reset token if an active account has `email`. Queued for every request,
    whether or not an account has the address, so the request's answer and timing do
    not tell."""
    settings, now = resources.settings, resources.clock.now()
    async with unit_of_work(resources) as session:
        user = await repository.find_by_email(session, email)
        if user is None or user.suspended:
            return
        expires_at = now + timedelta(minutes=settings.password_reset_ttl_minutes)
        token = await repository.replace_one_time_token(
            session, user, TokenPurpose.reset_password, expires_at, now
        )
        enqueue(session, send_password_reset_email, to=user.email, name=user.display_name, token=token)


@job_as("kith.users.jobs.touch_api_key")  # its name before it moved here
async def touch_api_key(resources: Resources, *, key_id: str) -> None:
    """Record when an API key was last used."""
    async with unit_of_work(resources) as session:
        await repository.touch_api_key(session, key_id, resources.clock.now())


@job
async def touch_app_token(resources: Resources, *, token_id: str) -> None:
    """Record when an app token was last used (shown in the user's list of authorized apps)."""
    async with unit_of_work(resources) as session:
        await repository.touch_app_token(session, token_id, resources.clock.now())
