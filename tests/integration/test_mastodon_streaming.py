"""Mastodon's streaming API over both transports (docs/mastodon.md#streaming): what each
stream carries, to whom, and when it closes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from websockets.asyncio.client import ClientConnection

from kith.core.config import Settings
from kith.core.realtime import TOPICS_ANSWER_SECONDS, RedisHub, author_posts, channel_of
from kith.main import create_app
from kith.mastodon.ids import from_mastodon_id, to_mastodon_id
from kith.runtime.resources import Resources
from tests import posting
from tests.conftest import REDIS_URL, redis_available
from tests.helpers import API, Account, assert_mastodon_error
from tests.integration.test_mastodon_oauth import register_app, user_token
from tests.live import serve

WAIT = 3.0


def ws_url(base: str, **query: str) -> str:
    url = base.replace("http://", "ws://") + "/api/v1/streaming"
    return url + ("?" + "&".join(f"{name}={value}" for name, value in query.items()) if query else "")


async def ws_message(ws: ClientConnection, timeout: float = WAIT) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return message


async def ws_quiet(ws: ClientConnection, seconds: float = 0.4) -> None:
    """Nothing arrives for a while."""
    with pytest.raises(TimeoutError):
        got = await asyncio.wait_for(ws.recv(), seconds)
        pytest.fail(f"unexpected message: {got!r}")


class EventStream:
    """A server-sent events stream read event by event: (name, data), ("comment", text)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = WAIT) -> tuple[str, str]:
        async with asyncio.timeout(timeout):
            name, data = "message", []
            async for line in self._lines:
                if line.startswith(":"):
                    return "comment", line[1:]
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data.append(line.removeprefix("data: "))
                elif line == "" and data:
                    return name, "\n".join(data)
        raise EOFError("the stream ended")

    async def next_event(self, timeout: float = WAIT) -> tuple[str, str]:
        """The next event, past heartbeats."""
        while True:
            name, data = await self.next(timeout)
            if name != "comment":
                return name, data


@contextlib.asynccontextmanager
async def sse(base: str, path: str, headers: dict[str, str]) -> AsyncIterator[EventStream]:
    async with (
        httpx.AsyncClient(base_url=base, timeout=10) as http,
        http.stream("GET", f"/api/v1/streaming/{path}", headers=headers) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = EventStream(response)
        assert await events.next() == ("comment", ")")  # open
        yield events


async def create_status(
    client: httpx.AsyncClient, author: Account, text: str, visibility: str
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/statuses", data={"status": text, "visibility": visibility}, headers=author.headers
    )
    assert response.status_code == 200, response.text
    status: dict[str, Any] = response.json()
    return status


async def test_the_user_stream_carries_friends_posts_notifications_and_deletes(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cyd = await posting.members(resources, "ada", "bob", "cyd")
    await posting.befriend(resources, ada, bob)
    async with (
        serve(app) as base,
        websockets.connect(ws_url(base, stream="user"), additional_headers=ada.headers) as ws,
    ):
        # A friend's friends-only post, in Mastodon's words, as ada sees it.
        status = await create_status(client, bob, "for friends", "private")
        message = await ws_message(ws)
        assert message["stream"] == ["user"] and message["event"] == "update"
        update = json.loads(message["payload"])
        assert update["id"] == status["id"] and update["visibility"] == "private"
        assert update["account"]["username"] == "bob" and update["content"] == "<p>for friends</p>"
        # Her own post too.
        mine = await create_status(client, ada, "my own", "public")
        assert json.loads((await ws_message(ws))["payload"])["id"] == mine["id"]
        # Neither a stranger's public post, nor a friend's post for his eyes only.
        await create_status(client, cyd, "a stranger's", "public")
        await posting.create_post(client, bob, content="only me", visibility="private")
        await ws_quiet(ws)
        # A like of her post is a notification.
        liked = await client.post(f"/api/v1/statuses/{mine['id']}/favourite", headers=bob.headers)
        assert liked.status_code == 200, liked.text
        message = await ws_message(ws)
        assert message["event"] == "notification" and message["stream"] == ["user"]
        notification = json.loads(message["payload"])
        assert notification["type"] == "favourite" and notification["status"]["id"] == mine["id"]
        assert notification["account"]["username"] == "bob"
        # The friend deletes his post: its id.
        deleted = await client.delete(f"/api/v1/statuses/{status['id']}", headers=bob.headers)
        assert deleted.status_code == 200, deleted.text
        assert await ws_message(ws) == {"stream": ["user"], "event": "delete", "payload": status["id"]}
        # An audience change is `status.update`.
        post = await posting.create_post(client, bob, content="later", visibility="private")
        changed = await client.patch(
            f"{API}/posts/{post['id']}", json={"visibility": "friends"}, headers=bob.headers
        )
        assert changed.status_code == 200, changed.text
        message = await ws_message(ws)
        assert message["event"] == "status.update"
        assert from_mastodon_id(json.loads(message["payload"])["id"]) == post["id"]


async def test_a_new_friendship_and_an_ended_one_change_what_the_stream_carries(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await posting.members(resources, "ada", "bob")
    async with (
        serve(app) as base,
        websockets.connect(ws_url(base, stream="user"), additional_headers=ada.headers) as ws,
    ):
        await create_status(client, bob, "before", "private")
        await ws_quiet(ws)
        # Bob asks (Mastodon's follow), ada authorizes: both are told, and bob's posts come.
        asked = await client.post(f"/api/v1/accounts/{to_mastodon_id(ada.id)}/follow", headers=bob.headers)
        assert asked.status_code == 200, asked.text
        request = await ws_message(ws)
        assert request["event"] == "notification"
        assert json.loads(request["payload"])["type"] == "follow_request"
        authorized = await client.post(
            f"/api/v1/follow_requests/{to_mastodon_id(bob.id)}/authorize", headers=ada.headers
        )
        assert authorized.status_code == 200, authorized.text
        status = await create_status(client, bob, "after", "private")
        assert json.loads((await ws_message(ws))["payload"])["id"] == status["id"]
        # A block ends the friendship: nothing more of bob's.
        await client.post(f"/api/v1/accounts/{to_mastodon_id(bob.id)}/block", headers=ada.headers)
        await create_status(client, bob, "blocked", "public")
        await ws_quiet(ws)


async def test_subscribe_and_unsubscribe_by_message_and_the_token_as_the_protocol(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, cyd = await posting.members(resources, "ada", "cyd")
    async with (
        serve(app) as base,
        websockets.connect(ws_url(base), subprotocols=[ada.access_token]) as ws,  # type: ignore[list-item]
    ):
        assert ws.subprotocol == ada.access_token
        await create_status(client, cyd, "nobody listens", "public")
        await ws_quiet(ws)
        await ws.send(json.dumps({"type": "subscribe", "stream": "public"}))
        await ws.send(json.dumps({"type": "subscribe", "stream": "public:local"}))
        await asyncio.sleep(0.1)
        public = await create_status(client, cyd, "public", "public")
        first, second = await ws_message(ws), await ws_message(ws)
        assert {first["stream"][0], second["stream"][0]} == {"public", "public:local"}
        assert json.loads(first["payload"])["id"] == public["id"]
        # Friends-only posts are not public.
        await create_status(client, cyd, "friends", "private")
        await ws_quiet(ws)
        await ws.send(json.dumps({"type": "unsubscribe", "stream": "public:local"}))
        await asyncio.sleep(0.1)
        await create_status(client, cyd, "again", "public")
        assert (await ws_message(ws))["stream"] == ["public"]
        await ws_quiet(ws)
        # Mistakes get Mastodon's error messages; the stream stays open.
        await ws.send(json.dumps({"type": "subscribe", "stream": "hashtag", "tag": "x"}))
        assert await ws_message(ws) == {"error": "Unknown stream type", "status": 400}
        await ws.send("not json")
        assert await ws_message(ws) == {"error": "Unknown message type", "status": 400}
        deleted = await client.delete(f"/api/v1/statuses/{public['id']}", headers=cyd.headers)
        assert deleted.status_code == 200
        assert await ws_message(ws) == {"stream": ["public"], "event": "delete", "payload": public["id"]}


async def test_the_token_in_the_query_and_credentials_refused(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    (ada,) = await posting.members(resources, "ada")
    async with serve(app) as base:
        async with websockets.connect(ws_url(base, access_token=ada.access_token, stream="user")) as ws:
            await create_status(client, ada, "mine", "public")
            assert (await ws_message(ws))["event"] == "update"
        for url in (ws_url(base, stream="user"), ws_url(base, access_token="garbage")):
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(url):
                    pass
            assert refused.value.response.status_code == 403
        async with httpx.AsyncClient(base_url=base) as http:
            assert_mastodon_error(await http.get("/api/v1/streaming/user"), 401)
            assert_mastodon_error(
                await http.get("/api/v1/streaming/user", headers={"Authorization": "Bearer garbage"}), 401
            )
            assert_mastodon_error(await http.get("/api/v1/streaming/hashtag", headers=ada.headers), 404)


async def test_server_sent_events_with_heartbeats(settings: Settings) -> None:
    application = create_app(settings.model_copy(update={"stream_ping_seconds": 0.3}))
    async with application.router.lifespan_context(application), serve(application) as base:
        resources: Resources = application.state.resources
        ada, bob, cyd = await posting.members(resources, "ada", "bob", "cyd")
        await posting.befriend(resources, ada, bob)
        async with httpx.AsyncClient(base_url=base) as http:
            async with sse(base, "user", ada.headers) as user, sse(base, "public", ada.headers) as public:
                assert await user.next() == ("comment", "thump")  # quiet: a heartbeat
                status = await create_status(http, bob, "hello", "private")
                name, data = await user.next_event()
                assert name == "update" and json.loads(data)["id"] == status["id"]
                stranger = await create_status(http, cyd, "public", "public")
                name, data = await public.next_event()
                assert name == "update" and json.loads(data)["id"] == stranger["id"]
                assert json.loads(data)["account"]["username"] == "cyd"
                async with sse(base, "user/notification", bob.headers) as notifications:
                    # His own post is on his `user` stream, not on his notifications stream.
                    own = await create_status(http, bob, "not here", "public")
                    liked = await http.post(f"/api/v1/statuses/{own['id']}/favourite", headers=ada.headers)
                    assert liked.status_code == 200, liked.text
                    name, data = await notifications.next_event()
                    assert name == "notification" and json.loads(data)["type"] == "favourite"
                    assert json.loads(data)["status"]["id"] == own["id"]


async def test_a_blocked_authors_public_post_is_not_streamed(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, cyd = await posting.members(resources, "ada", "cyd")
    await posting.block(resources, cyd, ada)
    async with serve(app) as base, sse(base, "public", ada.headers) as public:
        await create_status(client, cyd, "not for ada", "public")
        (other,) = await posting.members(resources, "eve")
        status = await create_status(client, other, "for all", "public")
        _, data = await public.next_event()
        assert json.loads(data)["id"] == status["id"]


async def test_a_revoked_app_token_ends_both_transports_and_scopes_apply(
    app: FastAPI, client: httpx.AsyncClient, resources: Resources
) -> None:
    await posting.members(resources, "ada")
    registered = await register_app(client, scopes="read write")
    token = await user_token(client, registered, scope="read")
    narrow = await user_token(client, registered, scope="read:notifications")
    headers = {"Authorization": f"Bearer {token}"}
    async with serve(app) as base:
        async with (
            sse(base, "user", headers) as events,
            websockets.connect(ws_url(base, stream="user"), additional_headers=headers) as ws,
        ):
            revoked = await client.post("/oauth/revoke", data={"token": token, **registered.credentials})
            assert revoked.status_code == 200, revoked.text
            with pytest.raises(EOFError):
                await events.next(timeout=WAIT)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws_message(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        # `read:notifications` opens the notifications stream, not the home timeline's.
        narrow_headers = {"Authorization": f"Bearer {narrow}"}
        async with httpx.AsyncClient(base_url=base) as http:
            assert_mastodon_error(await http.get("/api/v1/streaming/user", headers=narrow_headers), 403)
        async with sse(base, "user/notification", narrow_headers):
            pass


async def test_health(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/streaming/health")
    assert response.status_code == 200 and response.text == "OK"


@pytest.mark.skipif(not redis_available(), reason="Redis is not reachable")
async def test_across_processes_with_redis(settings: Settings) -> None:
    shared = settings.model_copy(update={"redis_url": REDIS_URL})
    # Two apps stand in for two processes: the streams on one, the posts made on the other.
    first, second = create_app(shared), create_app(shared)
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        ada, bob = await posting.members(first.state.resources, "ada", "bob")
        await posting.befriend(first.state.resources, ada, bob)
        async with serve(first) as streams, serve(second) as writes:
            async with (
                httpx.AsyncClient(base_url=writes) as http,
                sse(streams, "user", ada.headers) as events,
                websockets.connect(ws_url(streams, stream="user"), additional_headers=ada.headers) as ws,
            ):
                response = await http.get("/api/v1/streaming/health")
                assert response.status_code == 200 and response.text == "OK"
                status = await create_status(http, bob, "from afar", "private")
                name, data = await events.next_event()
                assert name == "update" and json.loads(data)["id"] == status["id"]
                assert json.loads((await ws_message(ws))["payload"])["id"] == status["id"]
                deleted = await http.delete(f"/api/v1/statuses/{status['id']}", headers=bob.headers)
                assert deleted.status_code == 200, deleted.text
                assert await events.next_event() == ("delete", status["id"])
                assert (await ws_message(ws))["event"] == "delete"


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 (a state of another task's, polled)
            await asyncio.sleep(0.01)


async def heard(listener: PubSub, seconds: float) -> list[dict[str, Any]]:
    """Every message the raw subscriber gets within `seconds`."""
    messages = []
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        message = await listener.get_message(ignore_subscribe_messages=True, timeout=left)
        if message is not None:
            messages.append(message)
    return messages


@pytest.mark.skipif(not redis_available(), reason="Redis is not reachable")
async def test_with_redis_topics_cost_no_publish_while_no_stream_listens() -> None:
    redis = Redis.from_url(REDIS_URL)
    notices = f"kith-test:{uuid.uuid4().hex}:notices"  # out of other tests' hearing
    streams, posts = RedisHub(redis, notices_channel=notices), RedisHub(redis, notices_channel=notices)
    late = RedisHub(redis, notices_channel=notices)
    topic, user = author_posts(uuid.uuid4().hex), uuid.uuid4().hex
    listener = redis.pubsub(ignore_subscribe_messages=True)
    try:
        for hub in (streams, posts):
            await hub.start()
        await listener.subscribe(channel_of(topic), channel_of(user))
        await until(lambda: streams.notices_healthy and posts.notices_healthy)
        # A process that just started believes someone may listen (until its question is
        # answered): it publishes.
        assert posts.topics_may_be_listened()
        # Past that, with no stream listening anywhere, a topic's event is not sent; a user's is.
        posts._topics_heard_until = 0.0
        await posts.publish_all([(topic, {"event": "_post"}), (user, {"event": "notification"})])
        assert [message["channel"] for message in await heard(listener, 0.5)] == [channel_of(user).encode()]
        # A stream starts to listen on the other process, which says so: posts are sent again.
        subscription = await streams.subscribe(user)
        await streams.listen(subscription, [topic])
        await until(posts.topics_may_be_listened)
        await posts.publish_all([(topic, {"event": "_post"})])
        async with asyncio.timeout(WAIT):
            assert (await subscription.queue.get()) == {"event": "_post"}
        # A process that starts later asks, and hears the answer at once (not 20 s later).
        await late.start()
        await until(lambda: late._topics_heard_until > time.monotonic() + TOPICS_ANSWER_SECONDS + 1)
        await streams.unsubscribe(subscription)
    finally:
        await listener.aclose()
        for hub in (streams, posts, late):
            await hub.stop()
        await redis.aclose()


async def test_a_busy_stream_still_ends_when_its_token_expires(settings: Settings) -> None:
    # A post every 0.1 s never leaves a heartbeat's quiet: the credentials are checked anyway.
    application = create_app(
        settings.model_copy(update={"access_token_ttl_seconds": 2, "stream_ping_seconds": 0.3})
    )
    async with application.router.lifespan_context(application), serve(application) as base:
        resources: Resources = application.state.resources
        ada, bob = await posting.members(resources, "ada", "bob")
        await posting.befriend(resources, ada, bob)
        async with (
            httpx.AsyncClient(base_url=base) as http,
            websockets.connect(ws_url(base, stream="user"), additional_headers=ada.headers) as ws,
        ):
            # Bob posts with an API key, which outlives ada's two-second access token.
            key = await http.post(
                f"{API}/users/me/api-keys",
                json={"name": "k", "scopes": ["read", "write"]},
                headers=bob.headers,
            )
            bob_key = {"X-API-Key": key.json()["key"]}
            updates = 0
            with pytest.raises(websockets.ConnectionClosed) as closed:
                async with asyncio.timeout(8):
                    while True:
                        posted = await http.post(
                            "/api/v1/statuses",
                            data={"status": "busy", "visibility": "private"},
                            headers=bob_key,
                        )
                        assert posted.status_code == 200, posted.text
                        with contextlib.suppress(TimeoutError):
                            updates += (await ws_message(ws, timeout=0.1))["event"] == "update"
    assert updates > 5  # it was busy
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
