"""Password hashing, access tokens (JWT) and random opaque tokens."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from kith.core.config import Settings
from kith.core.ids import new_id

# Fixed in code: a token cannot choose its own algorithm.
JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid", "jti", "iss", "aud"]
# Niceness of the hashing threads: under load the event loop's thread gets about ten
# times their CPU share, so a login flood slows logins instead of every other request.
HASHING_NICENESS = 10
T = TypeVar("T")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset or a cgroup)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _lower_thread_priority() -> None:
    # On Linux the nice value belongs to each thread; elsewhere this is a no-op. Relative to
    # the thread's own (inherited from the process): a server started with `nice` keeps its
    # loop ahead of its hashes, where a fixed value could raise their priority above it.
    with contextlib.suppress(AttributeError, OSError):
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness + HASHING_NICENESS))


class PasswordHasher:
    """Argon2id through pwdlib, always run off the event loop.

    Hashes run in this hasher's own threads, one per usable CPU (shared among the server's
    workers) and at a lower priority than the event loop: more threads would only take CPU
    time from the loops (Argon2 is CPU-bound) and hold more of its memory, and a flood of
    logins queues here instead of stalling the requests the loop is serving.
    """

    def __init__(self, settings: Settings, threads: int | None = None) -> None:
        # The CPUs are shared by the server's workers (`KITH_WORKERS`): together they hash on
        # as many threads as there are CPUs, not that many each.
        threads = threads or max(1, usable_cpus() // max(1, settings.workers))
        self._pool = ThreadPoolExecutor(
            max_workers=threads,
            thread_name_prefix="kith-hash",
            initializer=_lower_thread_priority,
        )
        # Requests that will hash wait for one of these before they take anything else
        # (a database connection above all): twice the threads keeps the hasher busy.
        self.slots = 2 * threads
        self._slots = asyncio.Semaphore(self.slots)
        self._hash = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=settings.argon2_time_cost,
                    memory_cost=settings.argon2_memory_kib,
                    parallelism=settings.argon2_parallelism,
                ),
            )
        )
        # Verified against when the account does not exist, so both cases cost the same.
        self._dummy_hash = self._hash.hash(secrets.token_urlsafe(16))

    async def _off_loop(self, work: Callable[..., T], *args: str) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the hasher's slots: a flood of logins queues here, holding nothing."""
        async with self._slots:
            yield

    async def hash(self, password: str) -> str:
        return await self._off_loop(self._hash.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> tuple[bool, str | None]:
        """Check a password; returns (valid, new hash if the parameters changed).

        With ``password_hash=None`` (no such account) a dummy hash is checked and the
        answer is always False, in about the same time as a wrong password.
        """
        if password_hash is None:
            await self._off_loop(self._hash.verify, password, self._dummy_hash)
            return False, None
        return await self._off_loop(self._hash.verify_and_update, password, password_hash)


# An app's OAuth token (the Mastodon-compatible API) starts with this, so that a bearer token
# is known for one without decoding it as a JWT, and a leaked one is recognised.
APP_TOKEN_PREFIX = "kith_at_"


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token with ``nbytes`` bytes (256 bits by default) of entropy."""
    return secrets.token_urlsafe(nbytes)


def hash_token(token: str) -> str:
    """SHA-256 of a high-entropy token; such tokens need no slow hash."""
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equals(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    token_id: str
    expires_at: datetime
    # The user's role when the token was issued: what rate limits count by, so they need
    # no database read. Authorization always reads the role from the database.
    role: str | None = None


class InvalidToken(Exception):
    """The access token is malformed, forged, expired or of the wrong kind."""


# How many verified access tokens a process remembers (about 1 KB each).
VERIFIED_CACHE_SIZE = 10_000


class AccessTokenCodec:
    """Signs and verifies access tokens with the configured key."""

    def __init__(self, settings: Settings) -> None:
        self._key = settings.signing_key()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self.ttl = timedelta(seconds=settings.access_token_ttl_seconds)
        self._verified: dict[str, AccessClaims] = {}

    def issue(
        self, user_id: str, session_id: str, now: datetime | None = None, *, role: str | None = None
    ) -> str:
        now = now or datetime.now(UTC)
        payload: dict[str, Any] = {
            "sub": user_id,
            "sid": session_id,
            "iat": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
            "iss": self._issuer,
            "aud": self._audience,
            "jti": new_id(),
        }
        if role is not None:
            payload["role"] = role
        return jwt.encode(payload, self._key, algorithm=JWT_ALGORITHM, headers={"typ": ACCESS_TOKEN_TYPE})

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token, else `InvalidToken`.

        A token verified once is remembered until it expires (at most `VERIFIED_CACHE_SIZE`
        of them, the oldest forgotten first): the rate limiter and the route both ask on
        every request, and a client sends the same token for its whole lifetime, so the
        signature is checked once per token instead of twice per request. The cache holds
        only what this codec verified with its own key, keyed by the whole token string.
        """
        claims = self._verified.get(token)
        if claims is not None:
            if claims.expires_at.timestamp() > time.time():
                return claims
            del self._verified[token]
            raise InvalidToken("Signature has expired")
        claims = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != ACCESS_TOKEN_TYPE:
                raise InvalidToken("wrong token type")
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[JWT_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        for claim in ("sub", "sid", "jti"):
            if not isinstance(claims.get(claim), str):
                raise InvalidToken(f"claim {claim} is not a string")
        if claims["exp"] - claims["iat"] > self.ttl.total_seconds():
            # Only the key holder can mint such a token, but never honour one anyway.
            raise InvalidToken("lifetime longer than this server issues")
        return AccessClaims(
            user_id=claims["sub"],
            session_id=claims["sid"],
            token_id=claims["jti"],
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            role=claims["role"] if isinstance(claims.get("role"), str) else None,
        )
