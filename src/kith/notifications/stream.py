"""WebSocket `<API prefix>/stream`: notifications and unread counts, live."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from kith.auth import service as auth
from kith.core.clock import Clock
from kith.core.config import Settings
from kith.core.realtime import Event, Place, RealtimeHub, Subscription
from kith.core.security import AccessTokenCodec
from kith.http.caller import client_ip
from kith.http.deps import AppClock, AppSettings, Realtime, Tokens, Transaction, UnitOfWork
from kith.notifications import repository
from kith.notifications.service import UNREAD_CHANGED

log = structlog.get_logger("kith.stream")
router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 1013
# Like HTTP's 429: past the open streams one account or address may hold (docs/api-guide.md).
CLOSE_TOO_MANY = 4429
# A stream's places under the caps are renewed every ping interval and lapse after this
# many unrenewed: the streams of a process that died stop counting then (docs/security.md).
LEASE_PINGS = 3


def cap_key(settings: Settings, kind: str, name: str) -> str:
    # Under the rate limits' prefix: several deployments may share one Redis.
    return f"{settings.rate_limit_key_prefix}:streams:{kind}:{name}"


def _bearer(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def _token_from_first_message(websocket: WebSocket, wait_seconds: float) -> str | None:
    try:
        message: Any = await asyncio.wait_for(websocket.receive_json(), wait_seconds)
    except (TimeoutError, WebSocketDisconnect, ValueError, KeyError):
        return None
    if isinstance(message, dict) and message.get("type") == "auth" and isinstance(message.get("token"), str):
        token: str = message["token"]
        return token
    return None


@dataclass(frozen=True)
class _Checks:
    """What an open stream reads. A WebSocket lives for hours and has no request
    transaction: each check is a short read of its own, so an open stream never holds a
    database connection between events, and reads the time when it checks."""

    transaction: UnitOfWork
    tokens: AccessTokenCodec
    clock: Clock

    async def identify(self, token: str | None) -> tuple[str, str, float] | None:
        """The user, login session and expiry (Unix time) of a valid access token."""
        if not token:
            return None
        async with self.transaction(write=False) as session:
            found = await auth.user_for_access_token(session, self.tokens, token, now=self.clock.now())
        if found is None:
            return None
        # Verified a moment ago, so remembered by the codec: no second signature check.
        expires_at = self.tokens.verify(token).expires_at.timestamp()
        return found[0].id, found[1], expires_at

    async def still_live(self, user_id: str, session_id: str) -> bool:
        async with self.transaction(write=False) as session:
            return await auth.auth_session_is_live(session, user_id, session_id, now=self.clock.now())

    async def unread(self, user_id: str) -> int:
        async with self.transaction(write=False) as session:
            return await repository.unread_count(session, user_id)


@router.websocket("/stream")
async def stream(
    websocket: WebSocket,
    transaction: Transaction,
    tokens: Tokens,
    clock: AppClock,
    hub: Realtime,
    settings: AppSettings,
) -> None:
    """Live notifications (docs/api.md#notifications-and-the-live-stream, docs/api-guide.md)."""
    checks = _Checks(transaction, tokens, clock)
    address = client_ip(websocket.scope, tuple(settings.trusted_proxies))
    await websocket.accept()
    # Counted from here, authenticated or not: on every instance sharing Redis, else on this one.
    lease = LEASE_PINGS * settings.stream_ping_seconds
    place = await hub.take_place(
        cap_key(settings, "address", address), settings.stream_max_per_address, lease
    )
    if place is None:
        await websocket.close(CLOSE_TOO_MANY, "too many open streams from this address")
        return
    try:
        await _serve(websocket, checks, hub, settings, place)
    finally:
        await hub.leave_places([place])


async def _serve(
    websocket: WebSocket, checks: _Checks, hub: RealtimeHub, settings: Settings, address_place: Place
) -> None:
    token = _bearer(websocket) or await _token_from_first_message(
        websocket, settings.stream_auth_timeout_seconds
    )
    identity = await checks.identify(token)
    if identity is None:
        await websocket.close(CLOSE_UNAUTHORIZED, "invalid or expired credentials")
        return
    user_id, session_id, expires_at = identity
    lease = LEASE_PINGS * settings.stream_ping_seconds
    place = await hub.take_place(cap_key(settings, "user", user_id), settings.stream_max_per_user, lease)
    if place is None:
        await websocket.close(CLOSE_TOO_MANY, "too many open streams for this account")
        return
    websocket.scope.setdefault("state", {})["user_id"] = user_id
    try:
        subscription = await hub.subscribe(user_id)
        listener = asyncio.create_task(_wait_for_disconnect(websocket))
        try:
            await websocket.send_json(
                {"event": "unread_count", "data": {"count": await checks.unread(user_id)}}
            )
            await _pump(
                websocket,
                checks,
                subscription,
                listener,
                (user_id, session_id, expires_at),
                settings.stream_ping_seconds,
                Lease(hub, (address_place, place), lease),
            )
        except WebSocketDisconnect:
            pass
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await hub.unsubscribe(subscription)
    finally:
        await hub.leave_places([place])


@dataclass(frozen=True)
class Lease:
    """The stream's places under the caps, renewed once a ping interval (at each ping, or
    between events when they come faster) so that they never lapse while it is open."""

    hub: RealtimeHub
    places: Sequence[Place]
    seconds: float

    async def renew_if_due(self, every: float) -> None:
        if time.monotonic() - min(place.renewed_at for place in self.places) >= every:
            await self.hub.renew_places(self.places, self.seconds)


async def _wait_for_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) client messages until the client goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


async def _pump(
    websocket: WebSocket,
    checks: _Checks,
    subscription: Subscription,
    listener: asyncio.Task[None],
    identity: tuple[str, str, float],
    ping_every: float,
    lease: Lease,
) -> None:
    user_id, session_id, expires_at = identity
    while True:
        left = expires_at - time.time()
        if left <= 0:
            # Clients authenticate again with a fresh access token (docs/api-guide.md).
            await websocket.close(CLOSE_UNAUTHORIZED, "access token expired")
            return
        await lease.renew_if_due(ping_every)
        getter: asyncio.Task[Event] = asyncio.create_task(subscription.queue.get())
        done, _ = await asyncio.wait(
            {getter, listener}, timeout=min(ping_every, left), return_when=asyncio.FIRST_COMPLETED
        )
        if listener in done:
            getter.cancel()
            return
        if subscription.overflowed:
            getter.cancel()
            await websocket.close(CLOSE_TOO_SLOW, "too far behind; reconnect and fetch /notifications")
            return
        if getter not in done:
            getter.cancel()
            if time.time() >= expires_at:
                continue  # closed at the top of the loop
            event: Event = {"event": "ping"}
        else:
            event = getter.result()
        if event["event"] in ("ping", "_revalidate") and not await checks.still_live(user_id, session_id):
            await websocket.close(CLOSE_UNAUTHORIZED, "session ended")
            return
        if event["event"] == UNREAD_CHANGED:
            event = {"event": "unread_count", "data": {"count": await checks.unread(user_id)}}
        if event["event"].startswith("_"):
            continue
        await websocket.send_json(event)
