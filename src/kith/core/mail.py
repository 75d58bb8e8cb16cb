"""Outgoing e-mail: real SMTP (aiosmtplib), or the console in development."""

from __future__ import annotations

import sys
import unicodedata
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import structlog

from kith.core.config import EmailBackend, Settings

log = structlog.get_logger("kith.mail")

# Full stops that Unicode writes other ways: ideographic, full-width, half-width ideographic.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def normalize_address(text: str) -> str:
    """The one spelling of an e-mail address, for lookup, uniqueness and every limit key.

    NFKC folds compatibility forms (full-width letters and digits, ligatures), the other
    full stops become `.`, and letters are lower-cased; surrounding space goes. So spellings
    of one address reach one account and count against one limit.
    """
    return unicodedata.normalize("NFKC", text).translate(_DOTS).strip().lower()


def compose(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    """Build a plain-text message. Only fixed text and validated addresses reach headers."""
    message = EmailMessage()
    message["From"] = settings.email_from
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="kith.local")
    message.set_content(body)
    return message


class Mailer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def send(self, message: EmailMessage) -> None:
        """Deliver a message; raises on failure so the job that sends it retries."""
        settings = self._settings
        if settings.email_backend is EmailBackend.console:
            headers = "".join(f"{name}: {value}\n" for name, value in message.items())
            body = message.get_content() if not message.is_multipart() else message.as_string()
            sys.stdout.write(f"--- e-mail (console backend) ---\n{headers}\n{body}---\n")
            sys.stdout.flush()
            return
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            start_tls=settings.smtp_starttls,
            use_tls=settings.smtp_tls,
            timeout=settings.smtp_timeout_seconds,
        )
        log.info("email_sent", subject=message["Subject"])
