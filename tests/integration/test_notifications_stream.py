"""Notifications API basics and the live stream over a real WebSocket."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection

from kith.core.breaker import Breaker
from kith.core.config import Settings
from kith.core.realtime import PLACE_TIMEOUT_SECONDS, RedisHub
from kith.db.models import NotificationType, User
from kith.main import create_app
from kith.notifications import service as notifications
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.conftest import REDIS_URL, redis_available
from tests.helpers import API, PASSWORD, Account, assert_problem, signup
from tests.live import free_port, serve


async def notify(resources: Resources, recipient: Account, actor: Account) -> str:
    """Raise a notification the way a domain service does, in its own transaction."""
    async with unit_of_work(resources) as session:
        actor_user = await session.get(User, actor.id)
        assert actor_user is not None
        created = await notifications.notify(
            session, recipient_id=recipient.id, actor=actor_user, type=NotificationType.friend_request
        )
        assert created is not None
        return created.id


async def next_event(ws: ClientConnection, timeout: float = 1.0) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return event


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + f"{API}/stream"


# --- REST -----------------------------------------------------------------------------


async def test_list_unread_count_and_mark_read(client: httpx.AsyncClient, resources: Resources) -> None:
    alice, bob = await signup(client, "alice"), await signup(client, "bob")
    first = await notify(resources, alice, bob)
    second = await notify(resources, alice, bob)
    listed = (await client.get(f"{API}/notifications", headers=alice.headers)).json()
    assert [item["id"] for item in listed["items"]] == [second, first]
    assert listed["items"][0]["actor"]["username"] == "bob"
    assert listed["items"][0]["read"] is False
    count = await client.get(f"{API}/notifications/unread-count", headers=alice.headers)
    assert count.json() == {"count": 2}
    # Bob cannot mark Alice's notifications, and sees none of them.
    await client.post(f"{API}/notifications/read", json={"ids": [first]}, headers=bob.headers)
    assert (await client.get(f"{API}/notifications", headers=bob.headers)).json()["items"] == []
    assert (await client.get(f"{API}/notifications/unread-count", headers=alice.headers)).json()["count"] == 2
    marked = await client.post(f"{API}/notifications/read", json={"ids": [first]}, headers=alice.headers)
    assert marked.status_code == 204
    unread = (await client.get(f"{API}/notifications?unread_only=true", headers=alice.headers)).json()
    assert [item["id"] for item in unread["items"]] == [second]
    await client.post(f"{API}/notifications/read", json={"all": True}, headers=alice.headers)
    assert (await client.get(f"{API}/notifications/unread-count", headers=alice.headers)).json()["count"] == 0


@pytest.mark.parametrize("body", [{}, {"ids": ["x"], "all": True}, {"all": False}, {"ids": ["x"] * 101}])
async def test_mark_read_body_is_validated(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    account = await signup(client, "marker")
    assert_problem(await client.post(f"{API}/notifications/read", json=body, headers=account.headers), 422)


async def test_nobody_is_notified_of_their_own_action(
    resources: Resources, client: httpx.AsyncClient
) -> None:
    solo = await signup(client, "solo")
    async with unit_of_work(resources) as session:
        user = await session.get(User, solo.id)
        assert user is not None
        made = await notifications.notify(
            session, recipient_id=solo.id, actor=user, type=NotificationType.post_liked, post_id=None
        )
    assert made is None


# --- WebSocket ------------------------------------------------------------------------


async def test_stream_with_header_auth_pushes_notifications(app: FastAPI, client: httpx.AsyncClient) -> None:
    alice, bob = await signup(client, "alice"), await signup(client, "bob")
    async with serve(app) as base, websockets.connect(ws_url(base), additional_headers=alice.headers) as ws:
        assert await next_event(ws) == {"event": "unread_count", "data": {"count": 0}}
        notification_id = await notify(app.state.resources, alice, bob)
        event = await next_event(ws)
        assert event["event"] == "notification"
        assert event["id"] == notification_id
        assert event["data"]["actor"]["username"] == "bob"
        assert await next_event(ws) == {"event": "unread_count", "data": {"count": 1}}


async def test_stream_with_first_message_auth(app: FastAPI, client: httpx.AsyncClient) -> None:
    alice = await signup(client, "alice")
    async with serve(app) as base, websockets.connect(ws_url(base)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": alice.access_token}))
        assert (await next_event(ws))["event"] == "unread_count"


@pytest.mark.parametrize("credentials", ["garbage", ""])
async def test_stream_refuses_bad_credentials_with_4401(
    app: FastAPI, client: httpx.AsyncClient, credentials: str
) -> None:
    async with serve(app) as base, websockets.connect(ws_url(base)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": credentials}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await next_event(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_stream_closes_when_no_auth_message_arrives(settings: Settings) -> None:
    application = create_app(settings.model_copy(update={"stream_auth_timeout_seconds": 0.2}))
    async with application.router.lifespan_context(application), serve(application) as base:
        async with websockets.connect(ws_url(base)) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await next_event(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_stream_closes_4401_at_logout(app: FastAPI, client: httpx.AsyncClient) -> None:
    alice = await signup(client, "alice")
    async with serve(app) as base, websockets.connect(ws_url(base), additional_headers=alice.headers) as ws:
        await next_event(ws)
        assert (await client.post(f"{API}/auth/logout", headers=alice.headers)).status_code == 204
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await next_event(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_stream_pings_and_closes_when_session_is_gone(settings: Settings) -> None:
    application = create_app(settings.model_copy(update={"stream_ping_seconds": 0.2}))
    async with application.router.lifespan_context(application), serve(application) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            alice = await signup(http, "alice")
            async with websockets.connect(ws_url(base), additional_headers=alice.headers) as ws:
                await next_event(ws)
                assert await next_event(ws) == {"event": "ping"}
                # Revoked behind the stream's back (no event): the next ping notices.
                from kith.auth import repository

                resources: Resources = application.state.resources
                async with unit_of_work(resources) as session:
                    await repository.revoke_user_sessions(session, alice.id, resources.clock.now())
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await next_event(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


async def test_stream_closes_4401_when_its_access_token_expires(settings: Settings) -> None:
    # Pings every 30 s, but the token's expiry is what closes it: a client that keeps a socket
    # open re-authenticates with a fresh token, and a stolen token's socket does not outlive it.
    application = create_app(settings.model_copy(update={"access_token_ttl_seconds": 2}))
    async with application.router.lifespan_context(application), serve(application) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            alice = await signup(http, "alice")
            async with websockets.connect(ws_url(base), additional_headers=alice.headers) as ws:
                await next_event(ws)
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await next_event(ws, timeout=5)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "access token expired")


async def test_stream_closes_4401_when_the_account_is_deleted(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    alice = await signup(client, "alice")
    async with serve(app) as base, websockets.connect(ws_url(base), additional_headers=alice.headers) as ws:
        await next_event(ws)
        deleted = await client.request(
            "DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=alice.headers
        )
        assert deleted.status_code == 204
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await next_event(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


@pytest.mark.parametrize(
    "counted_in",
    ["process", pytest.param("redis", marks=pytest.mark.skipif(not redis_available(), reason="no Redis"))],
)
async def test_streams_are_capped_per_account_and_per_address_with_4429(
    settings: Settings, counted_in: str
) -> None:
    # Counted by this process alone without Redis, in Redis (under keys of this test's own) with it.
    shared = {"redis_url": REDIS_URL, "rate_limit_key_prefix": f"kith-test:{uuid.uuid4().hex}"}
    capped = settings.model_copy(
        update={
            "stream_max_per_user": 2,
            "stream_max_per_address": 3,
            **(shared if counted_in == "redis" else {}),
        }
    )
    application = create_app(capped)
    async with application.router.lifespan_context(application), serve(application) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            alice, bob = await signup(http, "alice"), await signup(http, "bob")
        url = ws_url(base)
        async with (
            websockets.connect(url, additional_headers=alice.headers) as first,
            websockets.connect(url, additional_headers=alice.headers) as second,
        ):
            for ws in (first, second):
                await next_event(ws)
            async with websockets.connect(url, additional_headers=alice.headers) as third:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await next_event(third)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                4429,
                "too many open streams for this account",
            )
            # Bob's first stream is the address's third: allowed; a fourth is not, whoever it is.
            async with websockets.connect(url, additional_headers=bob.headers) as bobs:
                await next_event(bobs)
                async with websockets.connect(url, additional_headers=bob.headers) as fourth:
                    with pytest.raises(websockets.ConnectionClosed) as closed:
                        await next_event(fourth)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 4429
        # Closed streams free their places.
        async with websockets.connect(url, additional_headers=alice.headers) as again:
            assert (await next_event(again))["event"] == "unread_count"


# --- Redis pub/sub ----------------------------------------------------------------------

needs_redis = pytest.mark.skipif(not redis_available(), reason="Redis is not reachable")


@needs_redis
async def test_redis_hub_delivers_across_processes_and_drops_malformed_messages(settings: Settings) -> None:
    redis_settings = settings.model_copy(update={"redis_url": REDIS_URL})
    # Two apps stand in for two processes: the socket is on one, the action on the other.
    first, second = create_app(redis_settings), create_app(redis_settings)
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        async with serve(first) as base, httpx.AsyncClient(base_url=base) as http:
            alice, bob = await signup(http, "alice"), await signup(http, "bob")
            async with websockets.connect(ws_url(base), additional_headers=alice.headers) as ws:
                await next_event(ws)
                redis = first.state.resources.redis
                await redis.publish(f"kith:user:{alice.id}", b"{not json")
                await redis.publish(f"kith:user:{alice.id}", b'["no", "event"]')
                notification_id = await notify(second.state.resources, alice, bob)
                event = await next_event(ws)
                assert event["event"] == "notification"
                assert event["id"] == notification_id


@needs_redis
async def test_stream_places_in_redis_lapse_unless_renewed() -> None:
    """A place not renewed within its lease stops counting: the streams of a process that
    died free their places then. Renewed ones keep theirs."""
    redis = Redis.from_url(REDIS_URL)
    hub, other = RedisHub(redis), RedisHub(redis)  # two processes
    key = f"kith-test:{uuid.uuid4().hex}:streams:user:u1"
    try:
        crashed = await hub.take_place(key, 1, lease_seconds=0.5)
        assert crashed is not None
        assert await other.take_place(key, 1, lease_seconds=0.5) is None
        await asyncio.sleep(0.7)  # never renewed, never left: its process is gone
        kept = await other.take_place(key, 1, lease_seconds=0.5)
        assert kept is not None
        for _ in range(4):  # 0.8 s of renewals, longer than the lease
            await asyncio.sleep(0.2)
            await other.renew_places([kept], lease_seconds=0.5)
        assert await hub.take_place(key, 1, lease_seconds=0.5) is None
        await other.leave_places([kept])
        taken = await hub.take_place(key, 1, lease_seconds=0.5)
        assert taken is not None
        await hub.leave_places([taken])
        assert await redis.exists(key) == 0
    finally:
        await redis.aclose()


@needs_redis
async def test_open_streams_renew_their_places_in_redis_and_keep_them_past_the_lease(
    settings: Settings,
) -> None:
    # Pings every 0.2 s: a place lapses after 0.6 s unless its stream renews it.
    capped = settings.model_copy(
        update={
            "redis_url": REDIS_URL,
            "rate_limit_key_prefix": f"kith-test:{uuid.uuid4().hex}",
            "stream_ping_seconds": 0.2,
            "stream_max_per_user": 1,
        }
    )
    application = create_app(capped)
    async with application.router.lifespan_context(application), serve(application) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            alice = await signup(http, "alice")
        url = ws_url(base)
        async with websockets.connect(url, additional_headers=alice.headers) as held:
            assert (await next_event(held))["event"] == "unread_count"
            for _ in range(8):  # 1.6 s, well past the lease
                assert await next_event(held) == {"event": "ping"}
            async with websockets.connect(url, additional_headers=alice.headers) as extra:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await next_event(extra)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4429


async def test_stream_places_fall_back_to_this_process_when_redis_does_not_answer() -> None:
    """A Redis that accepts connections and never answers costs one short timeout, then
    the breaker's pause; meanwhile each process counts its own streams."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)

    frozen = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = frozen.sockets[0].getsockname()[1]
    redis = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=30, socket_connect_timeout=30)
    hub = RedisHub(redis, Breaker(60))
    try:
        started = time.monotonic()
        first = await hub.take_place("kith-test:streams:user:u1", 2, lease_seconds=90)
        assert first is not None
        assert time.monotonic() - started < PLACE_TIMEOUT_SECONDS + 0.5
        started = time.monotonic()
        second = await hub.take_place("kith-test:streams:user:u1", 2, lease_seconds=90)
        assert second is not None
        assert await hub.take_place("kith-test:streams:user:u1", 2, lease_seconds=90) is None
        await hub.renew_places([first, second], lease_seconds=90)
        await hub.leave_places([first])
        assert await hub.take_place("kith-test:streams:user:u1", 2, lease_seconds=90) is not None
        assert time.monotonic() - started < 0.2  # the breaker is open: Redis is not asked
        # Refused connections fall back too.
        refused = RedisHub(Redis.from_url(f"redis://127.0.0.1:{free_port()}/0"))
        assert await refused.take_place("kith-test:streams:user:u1", 1, lease_seconds=90) is not None
        assert await refused.take_place("kith-test:streams:user:u1", 1, lease_seconds=90) is None
    finally:
        await redis.aclose()
        frozen.close()


async def test_stream_closes_4401_when_an_admin_suspends_the_user(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    from kith.db.models import Role
    from tests.helpers import staff

    alice = await signup(client, "alice")
    admin = await staff(client, app.state.resources, "boss", Role.admin)
    async with serve(app) as base, websockets.connect(ws_url(base), additional_headers=alice.headers) as ws:
        await next_event(ws)
        response = await client.patch(
            f"{API}/admin/users/{alice.id}", json={"suspended": True}, headers=admin.headers
        )
        assert response.status_code == 200
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await next_event(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
