"""The access-token codec remembers tokens it verified, but never past their expiry, never
beyond its bound, and never one it did not verify itself."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from kith.core import security
from kith.core.config import Settings
from kith.core.security import AccessClaims, AccessTokenCodec, InvalidToken


def codec(ttl_seconds: int = 900) -> AccessTokenCodec:
    return AccessTokenCodec(
        Settings(secret_key="k" * 64, access_token_ttl_seconds=ttl_seconds, _env_file=None)
    )


def test_a_verified_token_is_checked_once_and_answers_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = codec()
    token = tokens.issue("user", "session")
    first = tokens.verify(token)
    checks: list[str] = []
    original = tokens._verify

    def counted(token: str) -> AccessClaims:
        checks.append(token)
        return original(token)

    monkeypatch.setattr(tokens, "_verify", counted)
    assert tokens.verify(token) == first
    assert checks == []


def test_a_remembered_token_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = codec()
    token = tokens.issue("user", "session")
    claims = tokens.verify(token)
    later = claims.expires_at.timestamp() + 1
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidToken):
        tokens.verify(token)
    # Forgotten, and still refused when asked again (by the signature check this time).
    assert token not in tokens._verified


def test_a_refused_token_is_not_remembered() -> None:
    tokens = codec()
    expired = tokens.issue("user", "session", now=datetime.now(UTC) - timedelta(hours=1))
    for _ in range(2):
        with pytest.raises(InvalidToken):
            tokens.verify(expired)
    assert tokens._verified == {}


def test_another_key_never_shares_the_memory() -> None:
    token = codec().issue("user", "session")
    other = AccessTokenCodec(Settings(secret_key="o" * 64, _env_file=None))
    with pytest.raises(InvalidToken):
        other.verify(token)


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "VERIFIED_CACHE_SIZE", 3)
    tokens = codec()
    issued = [tokens.issue(f"user{n}", "session") for n in range(5)]
    for token in issued:
        tokens.verify(token)
    assert list(tokens._verified) == issued[2:]
