"""What Kith keeps about a deleted account (docs/security.md#privacy): nothing in the database
holds its e-mail address once it is deleted, in any table or column, in any spelling."""

from __future__ import annotations

from email.message import EmailMessage

import httpx
import pytest
from sqlalchemy import func, inspect, select, text

from kith.core.mail import compose
from kith.db.models import OutgoingEmail, Role
from kith.runtime.outbox import resend_kept_emails, send_or_keep
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.conftest import Mailbox
from tests.helpers import API, PASSWORD, login, signup, staff

# The address as the person typed it, and its one stored spelling.
TYPED = "Ｇｏｎｅ．Ａｗａｙ@Example.com"
STORED = "gone.away@example.com"
# Where the address is while the account lives (and an SMTP outage keeps its e-mails).
HOLDING_IT = {
    "users.email",
    "one_time_tokens.email",
    "outgoing_emails.recipient",
    "outgoing_emails.message",
    "idempotency_keys.response_body",
}


def smtp_down(resources: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every e-mail is refused, so each one is kept in `outgoing_emails`."""

    async def refuse(_message: EmailMessage) -> None:
        raise ConnectionRefusedError("SMTP is down")

    monkeypatch.setattr(resources.mailer, "send", refuse)


async def columns_holding(resources: Resources, *needles: str) -> set[str]:
    """`table.column` of each value, in every table the database has, containing a needle
    (case aside): text, JSON and everything else, read as text."""
    wanted = [needle.lower() for needle in needles]
    found: set[str] = set()
    async with unit_of_work(resources, write=False) as session:
        connection = await session.connection()
        tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
        quote = connection.dialect.identifier_preparer.quote
        for table in tables:
            rows = await connection.execute(text(f"SELECT * FROM {quote(table)}"))  # noqa: S608
            for row in rows.mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    content = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
                    if any(needle in content.lower() for needle in wanted):
                        found.add(f"{table}.{column}")
    return found


@pytest.mark.parametrize("deleted_by", ["owner", "admin"])
async def test_a_deleted_account_leaves_its_address_nowhere_in_the_database(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch, deleted_by: str
) -> None:
    smtp_down(resources, monkeypatch)
    registered = await client.post(
        f"{API}/auth/register",
        json={"username": "leaver", "email": TYPED, "password": PASSWORD},
        headers={"Idempotency-Key": "sign-me-up"},
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["email"] == STORED
    user_id = registered.json()["id"]
    assert (await client.post(f"{API}/auth/password-reset", json={"email": TYPED})).status_code == 202
    headers = {"Authorization": f"Bearer {(await login(client, 'leaver'))['access_token']}"}
    posted = await client.post(
        f"{API}/posts",
        json={"content": "so long", "visibility": "public"},
        headers={**headers, "Idempotency-Key": "last-post"},
    )
    assert posted.status_code == 201, posted.text
    await resources.jobs.wait_idle()
    # The address is in the account, its tokens, the kept e-mails (welcome, verification,
    # reset) and the answer kept for a retry of the registration.
    assert await columns_holding(resources, TYPED, STORED) >= HOLDING_IT

    if deleted_by == "owner":
        deleted = await client.request(
            "DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=headers
        )
    else:
        admin = await staff(client, resources, "boss", Role.admin)
        deleted = await client.delete(f"{API}/admin/users/{user_id}", headers=admin.headers)
    assert deleted.status_code == 204, deleted.text
    await resources.jobs.wait_idle()

    assert await columns_holding(resources, TYPED, STORED) == set()
    # Its id stays only where the docs say: the admin's audit entry names whom it deleted.
    expected = {"audit_log.target_id"} if deleted_by == "admin" else set()
    assert await columns_holding(resources, user_id) == expected


async def kept(resources: Resources) -> int:
    async with unit_of_work(resources, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(OutgoingEmail)) or 0)


async def test_an_email_to_an_address_no_account_holds_is_neither_kept_nor_resent(
    client: httpx.AsyncClient, resources: Resources, monkeypatch: pytest.MonkeyPatch, mailbox: Mailbox
) -> None:
    # A job that was sending to an account as it was deleted: its failed e-mail is not kept.
    await signup(client, "keeper")
    await resources.jobs.wait_idle()
    mailbox.clear()
    with monkeypatch.context() as patched:
        smtp_down(resources, patched)
        await send_or_keep(resources, compose(resources.settings, STORED, "Welcome to Kith", "Hello"))
        assert await kept(resources) == 0
        await send_or_keep(resources, compose(resources.settings, "keeper@example.com", "Hi", "Hello"))
        assert await kept(resources) == 1
    # One kept in the instant the account was deleted: the next resend round deletes it, unsent.
    now = resources.clock.now()
    async with unit_of_work(resources) as session:
        message = compose(resources.settings, STORED, "Welcome to Kith", "Hello")
        session.add(
            OutgoingEmail(
                recipient=STORED,
                subject="Welcome to Kith",
                message=message.as_string(),
                attempts=1,
                created_at=now,
                next_attempt_at=now,
            )
        )
    resources.clock.freeze()
    resources.clock.advance(seconds=resources.settings.job_retry_max_seconds + 1)
    assert await resend_kept_emails(resources) == 1
    assert [str(sent["To"]) for sent in mailbox.messages] == ["keeper@example.com"]
    assert await kept(resources) == 0
    assert await columns_holding(resources, STORED) == set()
