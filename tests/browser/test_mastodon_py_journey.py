"""Two people use Kith through Mastodon.py only, the way a bot or a script would
(docs/mastodon.md): they sign in through the authorization page, become friends by a follow
request, post with an image for friends only, page through the home timeline with the
library's own pagination helpers, favourite, reply, read their notifications, hear it all
live over both streaming transports, and revoke their tokens.
"""

from __future__ import annotations

import io
import queue
import time
from typing import Any

import pytest
from mastodon import Mastodon, MastodonUnauthorizedError, StreamListener
from PIL import Image

from tests.browser.conftest import LiveServer, register_by_api
from tests.browser.test_mastodon_apps import OOB, SCOPES, approve_by_http, mastodon_app

WAIT = 10.0


class Heard(StreamListener):
    """What one stream delivered, in order: (event, payload)."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()

    def on_update(self, status: Any) -> None:
        self.events.put(("update", status))

    def on_notification(self, notification: Any) -> None:
        self.events.put(("notification", notification))

    def on_delete(self, status_id: Any) -> None:
        self.events.put(("delete", status_id))

    def next(self) -> tuple[str, Any]:
        return self.events.get(timeout=WAIT)


def signed_in(server: LiveServer, username: str) -> Mastodon:
    app = mastodon_app(server, f"{username}'s bot")
    url = app.auth_request_url(scopes=SCOPES, redirect_uris=OOB, allow_http=True)
    app.log_in(code=approve_by_http(server, url, username), scopes=SCOPES, allow_http=True)
    return app


def png() -> bytes:
    image = Image.new("RGB", (32, 24), (200, 40, 90))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_two_friends_use_kith_through_mastodon_py(live_server_factory: Any) -> None:
    # Heartbeats often: Mastodon.py's server-sent events stop only when the next line comes.
    live_server: LiveServer = live_server_factory(stream_ping_seconds=0.5)
    register_by_api(live_server, "ada")
    register_by_api(live_server, "bob")
    ada, bob = signed_in(live_server, "ada"), signed_in(live_server, "bob")
    ada_id = ada.me().id

    # Ada listens over both transports: server-sent events and the WebSocket.
    over_sse, over_ws = Heard(), Heard()
    sse = ada.stream_user(over_sse, run_async=True)
    websocket = ada.stream_open_websocket(over_ws)  # type: ignore[no-untyped-call]
    websocket.subscribe("user")
    time.sleep(0.5)  # both streams are open before anything happens
    try:
        # Bob asks to follow (a friend request); ada authorizes it, and they are friends.
        bob.account_follow(ada_id)
        assert [account.username for account in ada.follow_requests()] == ["bob"]
        for heard in (over_sse, over_ws):
            kind, notification = heard.next()
            assert (kind, notification.type, notification.account.username) == (
                "notification",
                "follow_request",
                "bob",
            )
        ada.follow_request_authorize(bob.me().id)
        relation = bob.account_relationships(ada_id)[0]
        assert relation.following and relation.followed_by

        # Bob posts a picture for his friends.
        media = bob.media_post(png(), mime_type="image/png")
        status = bob.status_post("a picture for friends", media_ids=[media], visibility="private")
        assert status.visibility == "private" and len(status.media_attachments) == 1
        for heard in (over_sse, over_ws):
            kind, update = heard.next()
            assert kind == "update" and update.id == status.id
            assert update.media_attachments[0].url == status.media_attachments[0].url

        # Ada writes 45 posts; bob pages his home timeline with the library's helpers.
        written = [ada.status_post(f"post {n}", visibility="public").id for n in range(45)]
        for heard in (over_sse, over_ws):
            for expected in written:
                kind, update = heard.next()
                assert kind == "update" and update.id == expected
        page = bob.timeline_home(limit=20)
        seen = [item.id for item in page]
        while (page := bob.fetch_next(page)) is not None and len(page) > 0:
            seen += [item.id for item in page]
        assert seen == [*reversed(written), status.id]  # newest first, no duplicates, all

        # Ada favourites bob's picture and replies to it; bob reads his notifications.
        favourited = ada.status_favourite(status.id)
        assert favourited.favourited and favourited.favourites_count == 1
        reply = ada.status_post("lovely", in_reply_to_id=status.id)
        assert reply.in_reply_to_id == status.id
        assert [item.id for item in ada.status_context(status.id).descendants] == [reply.id]
        kinds = [(item.type, item.account.username) for item in bob.notifications()]
        assert kinds[:3] == [("mention", "ada"), ("favourite", "ada"), ("follow", "ada")]
        # Bob favourites one of hers: she hears it live.
        bob.status_favourite(written[0])
        for heard in (over_sse, over_ws):
            kind, notification = heard.next()
            assert kind == "notification" and notification.type == "favourite"
            assert notification.status.id == written[0]

        # Bob deletes his picture: gone from both streams.
        bob.status_delete(status.id)
        for heard in (over_sse, over_ws):
            assert heard.next() == ("delete", status.id)
    finally:
        websocket.close()
        sse.close()

    # Revoked tokens stop working.
    for person in (ada, bob):
        token = person.access_token
        person.revoke_access_token(allow_http=True)
        with pytest.raises(MastodonUnauthorizedError):
            Mastodon(access_token=token, api_base_url=live_server.url).me()
