"""WebSocket /api/v1/stream: notifications and unread counts, live."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from kith.auth import service as auth
from kith.core.realtime import Event, Subscription
from kith.notifications import repository
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work

log = structlog.get_logger("kith.stream")
router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 1013


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


# A WebSocket lives for hours and has no request transaction: each check below is a short
# read of its own, so an open stream never holds a database connection between events.


async def _identify(resources: Resources, token: str | None) -> tuple[str, str] | None:
    if not token:
        return None
    async with unit_of_work(resources, write=False) as session:
        found = await auth.user_for_access_token(session, resources, token)
    return (found[0].id, found[1]) if found else None


async def _still_live(resources: Resources, user_id: str, session_id: str) -> bool:
    async with unit_of_work(resources, write=False) as session:
        return await auth.auth_session_is_live(session, resources, user_id, session_id)


async def _unread(resources: Resources, user_id: str) -> int:
    async with unit_of_work(resources, write=False) as session:
        return await repository.unread_count(session, user_id)


@router.websocket("/stream")
async def stream(websocket: WebSocket) -> None:
    """Live notifications (docs/api.md#notifications-and-the-live-stream, docs/api-guide.md)."""
    resources: Resources = websocket.app.state.resources
    settings = resources.settings
    await websocket.accept()
    token = _bearer(websocket) or await _token_from_first_message(
        websocket, settings.stream_auth_timeout_seconds
    )
    identity = await _identify(resources, token)
    if identity is None:
        await websocket.close(CLOSE_UNAUTHORIZED, "invalid or expired credentials")
        return
    user_id, session_id = identity
    websocket.scope.setdefault("state", {})["user_id"] = user_id
    subscription = await resources.realtime.subscribe(user_id)
    listener = asyncio.create_task(_wait_for_disconnect(websocket))
    try:
        await websocket.send_json(
            {"event": "unread_count", "data": {"count": await _unread(resources, user_id)}}
        )
        await _pump(websocket, resources, subscription, listener, user_id, session_id)
    except WebSocketDisconnect:
        pass
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await resources.realtime.unsubscribe(subscription)


async def _wait_for_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) client messages until the client goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


async def _pump(
    websocket: WebSocket,
    resources: Resources,
    subscription: Subscription,
    listener: asyncio.Task[None],
    user_id: str,
    session_id: str,
) -> None:
    ping_every = resources.settings.stream_ping_seconds
    while True:
        getter: asyncio.Task[Event] = asyncio.create_task(subscription.queue.get())
        done, _ = await asyncio.wait(
            {getter, listener}, timeout=ping_every, return_when=asyncio.FIRST_COMPLETED
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
            event: Event = {"event": "ping"}
        else:
            event = getter.result()
        if event["event"] in ("ping", "_revalidate") and not await _still_live(
            resources, user_id, session_id
        ):
            await websocket.close(CLOSE_UNAUTHORIZED, "session ended")
            return
        if event["event"].startswith("_"):
            continue
        await websocket.send_json(event)
