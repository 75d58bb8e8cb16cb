"""Mastodon's streaming API: statuses and notifications live (docs/mastodon.md#streaming).

Two transports carry the same streams:
- a WebSocket at `/api/v1/streaming`: the token in `Authorization`, in `access_token` or
  as the `Sec-WebSocket-Protocol`; the first stream in `?stream=`, more with
  `{"type": "subscribe", "stream": ...}` and fewer with `unsubscribe`; each message
  `{"stream": [name], "event": ..., "payload": ...}`;
- server-sent events at `/api/v1/streaming/{user, user/notification, public, public/local}`,
  with a `:thump` comment as heartbeat.

The streams: `user` (new posts of the user and their friends as `update`, an audience change
as `status.update`, removals as `delete`, and notifications), `user:notification` (the
notifications only), `public` and `public:local` (public posts; one server, so the same).

They listen through the realtime hub (`kith.core.realtime`), across every worker and
instance when Redis is configured. A post's event names it only: each stream reads the
status as its user may see it, so visibility and blocks are Kith's own rules, applied when
the event is delivered. A stream holds no database connection between events; it checks its
credentials again at each heartbeat and at once when they may have changed (a revoked
token, a password change), and counts under the same caps as Kith's own stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import orjson
import structlog
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from starlette.requests import HTTPConnection

from kith.auth.dependencies import InsufficientScope, Principal, principal_of
from kith.auth.service import InvalidAuthToken
from kith.core.config import Settings
from kith.core.errors import BadRequest, DomainError, NotFound, ServiceUnavailable, Unauthorized
from kith.core.realtime import PUBLIC_POSTS, Event, Place, RealtimeHub, Subscription, author_posts
from kith.http.caller import client_ip
from kith.http.deps import AppSettings, Realtime, Transaction, UnitOfWork
from kith.http.session import get_resources
from kith.mastodon.ids import to_mastodon_id
from kith.mastodon.notifications import notification_entity
from kith.mastodon.statuses import status_of_post
from kith.mastodon.subscriptions import FRIENDS, POST, POST_REMOVED, VIA_AUTHOR, VIA_PUBLIC
from kith.notifications.stream import (
    CLOSE_TOO_MANY,
    CLOSE_TOO_SLOW,
    CLOSE_UNAUTHORIZED,
    LEASE_PINGS,
    Lease,
    cap_key,
)
from kith.posts import service as posts
from kith.social import repository as social

log = structlog.get_logger("kith.mastodon.streaming")
router = APIRouter(include_in_schema=False)

USER = "user"
NOTIFICATIONS = "user:notification"
PUBLIC = "public"
LOCAL = "public:local"
STREAMS = (USER, NOTIFICATIONS, PUBLIC, LOCAL)
# The scope an app token needs for each stream (Mastodon's: `read` holds both).
NEEDED_SCOPE = {
    USER: "read:statuses",
    NOTIFICATIONS: "read:notifications",
    PUBLIC: "read:statuses",
    LOCAL: "read:statuses",
}
HEARTBEAT = b":thump\n\n"


class UnknownStream(BadRequest):
    code = "unknown_stream"
    default_detail = "Unknown stream type"
    description = "The stream asked for is not one Kith has: user, user:notification, public, public:local."


class StreamNotFound(NotFound):
    code = "stream_not_found"
    default_detail = "Unknown stream type"
    description = "No stream has this path: user, user/notification, public, public/local."


class TooManyStreams(DomainError):
    status = 429
    code = "too_many_streams"
    default_detail = "Too many open streams for this account or address"
    description = "The account or the client's address holds as many open streams as it may."


class StreamingUnavailable(ServiceUnavailable):
    """The live events cannot cross processes now: Redis does not answer."""


@dataclass(frozen=True)
class Message:
    """One message to the client: its stream, event name and payload (a JSON text, or an id)."""

    stream: str
    event: str
    payload: str

    def websocket_text(self) -> str:
        return orjson.dumps({"stream": [self.stream], "event": self.event, "payload": self.payload}).decode()

    def sse(self) -> bytes:
        return f"event: {self.event}\ndata: {self.payload}\n\n".encode()


class StreamEnded(Exception):
    """The stream must close: its credentials are gone, or its client is too far behind."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass
class Source:
    """One connection's streams: the topics it listens to, and Kith's events as Mastodon's."""

    connection: HTTPConnection
    transaction: UnitOfWork
    hub: RealtimeHub
    token: str
    principal: Principal
    subscription: Subscription
    streams: set[str] = field(default_factory=set)
    # The friends whose topics the `user` stream listens to (None while it is off).
    friends: set[str] | None = None
    # When the credentials were last found good (monotonic clock).
    checked_at: float = field(default_factory=time.monotonic)

    @property
    def user_id(self) -> str:
        return self.principal.user.id

    def check_scope(self, stream: str) -> None:
        if stream not in STREAMS:
            raise UnknownStream()
        if not self.principal.allows(NEEDED_SCOPE[stream]):
            raise InsufficientScope()

    async def add(self, stream: str) -> None:
        self.check_scope(stream)
        self.streams.add(stream)
        await self._listen()

    async def remove(self, stream: str) -> None:
        self.streams.discard(stream)
        await self._listen()

    async def _listen(self) -> None:
        """Listen to the topics the streams need, and to no other."""
        wanted: set[str] = set()
        if USER in self.streams:
            if self.friends is None:
                async with self.transaction(write=False) as session:
                    self.friends = set(await social.friend_ids(session, self.user_id))
            wanted |= {author_posts(user_id) for user_id in (*self.friends, self.user_id)}
        else:
            self.friends = None
        if PUBLIC in self.streams or LOCAL in self.streams:
            wanted.add(PUBLIC_POSTS)
        held = self.subscription.keys - {self.user_id}
        await self.hub.stop_listening(self.subscription, held - wanted)
        await self.hub.listen(self.subscription, wanted - held)

    async def check_credentials(self) -> None:
        """Raise `StreamEnded` when the token no longer works (revoked, expired, a
        suspended user, a password changed)."""
        found = await _principal(self.connection, self.transaction, self.token)
        if found is None or found.user.id != self.user_id:
            raise StreamEnded(CLOSE_UNAUTHORIZED, "invalid or expired credentials")
        self.principal = found
        self.checked_at = time.monotonic()

    async def check_credentials_if_due(self, every: float) -> None:
        """Check them when `every` seconds passed since the last check: a busy stream (its
        events never leave a heartbeat's quiet) still notices an expired token."""
        if time.monotonic() - self.checked_at >= every:
            await self.check_credentials()

    async def next_messages(self, wait_seconds: float) -> list[Message] | None:
        """The messages of the next event (maybe none), or None when `wait_seconds` pass first."""
        try:
            async with asyncio.timeout(wait_seconds):
                event = await self.subscription.queue.get()
        except TimeoutError:
            return None
        if self.subscription.overflowed:
            raise StreamEnded(CLOSE_TOO_SLOW, "too far behind; reconnect and read the timelines")
        return await self.messages_of(event)

    async def messages_of(self, event: Event) -> list[Message]:
        kind = event.get("event")
        if kind == "_revalidate":
            await self.check_credentials()
            return []
        if kind == FRIENDS:
            if self.user_id in event.get("users", ()):  # else a friend's friendship
                self.friends = None
                await self._listen()
            return []
        if kind == "notification":
            return await self._notification(event)
        if kind in (POST, POST_REMOVED):
            streams = self._streams_via(event.get("via"))
            if not streams:
                return []
            if kind == POST_REMOVED:
                return [Message(stream, "delete", to_mastodon_id(event["post"])) for stream in streams]
            return await self._status(event, streams)
        return []

    def _streams_via(self, via: object) -> list[str]:
        if via == VIA_AUTHOR:
            return [USER] if USER in self.streams else []
        if via == VIA_PUBLIC:
            return [stream for stream in (PUBLIC, LOCAL) if stream in self.streams]
        return []

    async def _status(self, event: Event, streams: list[str]) -> list[Message]:
        async with self.transaction(write=False) as session:
            user = self.principal.user
            found = await posts.readable_posts_by_id(session, user, [event["post"]])
            if not found:
                return []  # not for this user's eyes (or gone already)
            status = await status_of_post(session, user, found[0])
        payload = status.model_dump_json(by_alias=True)
        name = "update" if event.get("new", True) else "status.update"
        return [Message(stream, name, payload) for stream in streams]

    async def _notification(self, event: Event) -> list[Message]:
        streams = [stream for stream in (USER, NOTIFICATIONS) if stream in self.streams]
        if not streams or not self.principal.allows("read:notifications"):
            return []
        async with self.transaction(write=False) as session:
            found = await notification_entity(session, self.principal.user, str(event.get("id")))
        if found is None:
            return []
        payload = found.model_dump_json(by_alias=True)
        return [Message(stream, "notification", payload) for stream in streams]


@dataclass
class _Opened:
    """What an open stream holds until it closes: its places under the caps and its inbox."""

    hub: RealtimeHub
    places: list[Place]
    lease: Lease
    subscription: Subscription | None = None

    async def close(self) -> None:
        # Shielded: a client that went away cancels the stream, and these must still run.
        with anyio.CancelScope(shield=True):
            if self.subscription is not None:
                await self.hub.unsubscribe(self.subscription)
            await self.hub.leave_places(self.places)


async def _principal(connection: HTTPConnection, transaction: UnitOfWork, token: str) -> Principal | None:
    """Whose token this is now (a stream asks again later: the time is read at each check)."""
    now = get_resources(connection).clock.now()
    async with transaction(write=False) as session:
        try:
            return await principal_of(
                connection, session, (token, None), app_tokens=True, read_only=True, now=now
            )
        except DomainError:
            return None  # an app's own token (no user), or an app token outside this API


async def _identify(connection: HTTPConnection, transaction: UnitOfWork, token: str | None) -> Principal:
    if not token:
        raise Unauthorized()
    found = await _principal(connection, transaction, token)
    if found is None:
        raise InvalidAuthToken()
    return found


async def _open(
    connection: HTTPConnection,
    transaction: UnitOfWork,
    hub: RealtimeHub,
    settings: Settings,
    token: str | None,
) -> tuple[Source, _Opened]:
    """Authenticate, take the places under the caps, subscribe. Raises a DomainError (an
    HTTP answer) when the stream may not open."""
    lease_seconds = LEASE_PINGS * settings.stream_ping_seconds
    address = client_ip(connection.scope, tuple(settings.trusted_proxies))
    address_place = await hub.take_place(
        cap_key(settings, "address", address), settings.stream_max_per_address, lease_seconds
    )
    if address_place is None:
        raise TooManyStreams()
    opened = _Opened(hub, [address_place], Lease(hub, [address_place], lease_seconds))
    try:
        principal = await _identify(connection, transaction, token)
        user_id = principal.user.id
        place = await hub.take_place(
            cap_key(settings, "user", user_id), settings.stream_max_per_user, lease_seconds
        )
        if place is None:
            raise TooManyStreams()
        opened.places.append(place)
        opened.lease = Lease(hub, list(opened.places), lease_seconds)
        opened.subscription = await hub.subscribe(user_id)
        connection.scope.setdefault("state", {})["user_id"] = user_id
    except BaseException:
        await opened.close()
        raise
    assert token is not None
    return Source(connection, transaction, hub, token, principal, opened.subscription), opened


def _bearer(connection: HTTPConnection) -> str | None:
    scheme, _, token = (connection.headers.get("authorization") or "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        return token
    return connection.query_params.get("access_token") or None


# --- the health check --------------------------------------------------------------------------


@router.get("/api/v1/streaming/health")
async def health(hub: Realtime) -> PlainTextResponse:
    """`OK` while live events reach every process (always, without Redis), else 503."""
    if not hub.notices_healthy:
        raise StreamingUnavailable("Redis does not answer: live events stay within each process.")
    return PlainTextResponse("OK")


# --- server-sent events ----------------------------------------------------------------------


async def _sse(
    request: Request, transaction: UnitOfWork, hub: RealtimeHub, settings: Settings, stream: str
) -> Response:
    source, opened = await _open(request, transaction, hub, settings, _bearer(request))
    try:
        await source.add(stream)
    except BaseException:
        await opened.close()
        raise
    return StreamingResponse(
        _events(source, opened, settings.stream_ping_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(source: Source, opened: _Opened, heartbeat_every: float) -> AsyncIterator[bytes]:
    try:
        yield b":)\n\n"  # as Mastodon starts: the client knows the stream is open
        while True:
            await opened.lease.renew_if_due(heartbeat_every)
            await source.check_credentials_if_due(heartbeat_every)
            messages = await source.next_messages(heartbeat_every)
            if messages is None:
                yield HEARTBEAT
                continue
            for message in messages:
                yield message.sse()
    except StreamEnded as ended:
        log.info("mastodon_stream_ended", reason=ended.reason)
    finally:
        await opened.close()


# The server-sent events' paths, after `/api/v1/streaming/`, and their streams.
SSE_STREAMS = {"user": USER, "user/notification": NOTIFICATIONS, "public": PUBLIC, "public/local": LOCAL}


@router.get("/api/v1/streaming/{path:path}")
async def server_sent_events(
    path: str, request: Request, transaction: Transaction, hub: Realtime, settings: AppSettings
) -> Response:
    """One stream as server-sent events: `user` (the home timeline and notifications),
    `user/notification`, `public` and `public/local` (the same here: Kith has no other server)."""
    stream = SSE_STREAMS.get(path)
    if stream is None:
        raise StreamNotFound()
    return await _sse(request, transaction, hub, settings, stream)


# --- the WebSocket -----------------------------------------------------------------------------


@router.websocket("/api/v1/streaming")
async def websocket_stream(
    websocket: WebSocket, transaction: Transaction, hub: Realtime, settings: AppSettings
) -> None:
    """Every stream over one WebSocket, subscribed and unsubscribed by message."""
    protocol = websocket.headers.get("sec-websocket-protocol", "").split(",")[0].strip() or None
    token = _bearer(websocket) or protocol
    try:
        source, opened = await _open(websocket, transaction, hub, settings, token)
    except DomainError as error:
        # Refused before the upgrade, as Mastodon does: the client sees an HTTP error.
        await websocket.close(CLOSE_TOO_MANY if error.status == 429 else CLOSE_UNAUTHORIZED, error.detail)
        return
    try:
        await websocket.accept(subprotocol=protocol if protocol == token and not _bearer(websocket) else None)
        first = websocket.query_params.get("stream")
        if first:
            await _subscribe(websocket, source, {"type": "subscribe", "stream": first})
        await _pump(websocket, source, opened, settings.stream_ping_seconds)
    except StreamEnded as ended:
        with contextlib.suppress(Exception):
            await websocket.close(ended.code, ended.reason)
    except WebSocketDisconnect:
        pass
    finally:
        await opened.close()


async def _subscribe(websocket: WebSocket, source: Source, message: Any) -> None:
    """Act on one client message; a bad one gets an error message, as Mastodon sends."""
    if not isinstance(message, dict) or message.get("type") not in ("subscribe", "unsubscribe"):
        await websocket.send_text(orjson.dumps({"error": "Unknown message type", "status": 400}).decode())
        return
    stream = message.get("stream")
    try:
        if not isinstance(stream, str):
            raise UnknownStream()
        if message["type"] == "subscribe":
            await source.add(stream)
        else:
            await source.remove(stream)
    except DomainError as error:
        await websocket.send_text(orjson.dumps({"error": error.detail, "status": error.status}).decode())


async def _client_message(websocket: WebSocket) -> Any:
    """The client's next message, parsed (None when it is not JSON)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    try:
        return orjson.loads(text if text is not None else message.get("bytes") or b"")
    except orjson.JSONDecodeError:
        return None


async def _pump(websocket: WebSocket, source: Source, opened: _Opened, heartbeat_every: float) -> None:
    """Send the streams' messages as they come, and act on the client's as they come: the
    wait for the next event goes on while a client message is handled, so none is lost."""
    incoming: asyncio.Task[Any] = asyncio.create_task(_client_message(websocket))
    waiting: asyncio.Task[list[Message] | None] | None = None
    try:
        while True:
            await opened.lease.renew_if_due(heartbeat_every)
            await source.check_credentials_if_due(heartbeat_every)
            if waiting is None:
                waiting = asyncio.create_task(source.next_messages(heartbeat_every))
            done, _ = await asyncio.wait({waiting, incoming}, return_when=asyncio.FIRST_COMPLETED)
            if incoming in done:
                message = incoming.result()  # raises WebSocketDisconnect when the client left
                await _subscribe(websocket, source, message)
                incoming = asyncio.create_task(_client_message(websocket))
            if waiting in done:
                messages, waiting = waiting.result(), None
                for item in messages or ():
                    await websocket.send_text(item.websocket_text())
    finally:
        for task in (incoming, waiting):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                    await task
