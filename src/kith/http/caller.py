"""Who is calling, found before the request's own transaction opens.

Rate limits and idempotency keys both need to know the caller before the route's
dependencies run: a limit is checked before any costly work, and an idempotency key is
claimed before the request's session takes SQLite's write lock. Authentication proper
(session liveness, suspension, scopes) stays in `kith.auth.dependencies`; this only
*identifies*: a validly signed access token names its user, a known API key or app token
its owner, and anything else (no credentials, or bad ones) is the client's IP address.

The client address is the TCP peer, unless the peer is one of `KITH_TRUSTED_PROXIES`:
then it is the right-most address of `X-Forwarded-For` that is not itself a trusted
proxy, so a client cannot choose its own address by sending the header.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from sqlalchemy import or_, select
from starlette.datastructures import Headers
from starlette.types import Scope

from kith.core.security import APP_TOKEN_PREFIX, InvalidToken, hash_token
from kith.db.models import ApiKey, OAuthToken
from kith.runtime.transaction import unit_of_work

if TYPE_CHECKING:
    from kith.runtime.resources import Resources

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_STATE_KEY = "kith_caller"
# IPv6 clients usually hold a whole /64: grouping by it stops one client from rotating
# through its own addresses to escape a per-IP limit.
IPV6_GROUP_PREFIX = 64


@dataclass(frozen=True)
class Caller:
    """The identified caller: a user id when the credentials name one, and the client IP."""

    ip: str
    user_id: str | None = None
    # The role an access token names (None for an API key or no credentials).
    role: str | None = None

    @property
    def ip_group(self) -> str:
        """The address that per-IP limits count: IPv6 grouped by /64, IPv4 as is."""
        try:
            address = ipaddress.ip_address(self.ip)
        except ValueError:
            return self.ip
        if isinstance(address, ipaddress.IPv6Address):
            return str(ipaddress.IPv6Network((address, IPV6_GROUP_PREFIX), strict=False))
        return str(address)

    @property
    def limit_key(self) -> str:
        """Per-user limits count users; anonymous requests count per IP group."""
        return f"user:{self.user_id}" if self.user_id else f"ip:{self.ip_group}"

    @property
    def owner(self) -> str:
        """Who owns an idempotency key: the user, else the exact client address."""
        return self.user_id or f"ip:{self.ip}"


@lru_cache(maxsize=64)
def parse_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """`KITH_TRUSTED_PROXIES` entries as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _normalise(text: str) -> str | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:443"
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _is_trusted(address: str, proxies: tuple[IPNetwork, ...]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == network.version and ip in network for network in proxies)


def client_ip(scope: Scope, trusted_proxies: tuple[str, ...]) -> str:
    """The client's address, read from `X-Forwarded-For` only behind a trusted proxy."""
    client = scope.get("client")
    peer = _normalise(client[0]) if client else None
    if peer is None:
        return "unknown"
    proxies = parse_networks(trusted_proxies)
    if not proxies or not _is_trusted(peer, proxies):
        return peer
    forwarded = ",".join(value for value in Headers(scope=scope).getlist("x-forwarded-for"))
    hops = [_normalise(part) for part in forwarded.split(",") if part.strip()]
    # Walk from the nearest hop outwards; the first address not run by us is the client.
    for hop in reversed(hops):
        if hop is None:
            return peer  # a garbled header: trust nothing in it
        if not _is_trusted(hop, proxies):
            return hop
    return hops[0] if hops and hops[0] else peer


async def _api_key_owner(resources: Resources, key: str) -> str | None:
    now = resources.clock.now()
    # Its own read: the caller is identified (for rate limits and idempotency keys) before
    # the request's transaction opens.
    async with unit_of_work(resources, write=False) as session:
        user_id: str | None = await session.scalar(
            select(ApiKey.user_id).where(
                ApiKey.key_hash == hash_token(key),
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
            )
        )
    return user_id


async def _app_token_owner(resources: Resources, token: str) -> str | None:
    # As for an API key: its own read, before the request's transaction opens. An app's own
    # token (no user) counts per address.
    async with unit_of_work(resources, write=False) as session:
        user_id: str | None = await session.scalar(
            select(OAuthToken.user_id).where(OAuthToken.token_hash == hash_token(token))
        )
    return user_id


async def identify_caller(scope: Scope, resources: Resources) -> Caller:
    """The request's caller, found once and kept on the request for everything after."""
    state = scope.setdefault("state", {})
    found: Caller | None = state.get(_STATE_KEY)
    if found is not None:
        return found
    headers = Headers(scope=scope)
    ip = client_ip(scope, tuple(resources.settings.trusted_proxies))
    user_id: str | None = None
    role: str | None = None
    scheme, _, token = headers.get("authorization", "").partition(" ")
    api_key = headers.get("x-api-key")
    if scheme.lower() == "bearer" and token.strip().startswith(APP_TOKEN_PREFIX):
        user_id = await _app_token_owner(resources, token.strip())
    elif scheme.lower() == "bearer" and token.strip():
        try:
            claims = resources.tokens.verify(token.strip())
            user_id, role = claims.user_id, claims.role
        except InvalidToken:
            user_id = None
    elif api_key:
        user_id = await _api_key_owner(resources, api_key)
    caller = Caller(ip=ip, user_id=user_id, role=role)
    state[_STATE_KEY] = caller
    return caller
