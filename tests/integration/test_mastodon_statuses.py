"""Mastodon's statuses from Kith's posts, comments and likes (docs/mastodon.md#statuses)."""

from __future__ import annotations

from typing import Any

import httpx

from kith.mastodon.ids import from_mastodon_id, to_mastodon_id
from kith.mastodon.statuses import content_html
from kith.runtime.resources import Resources
from tests import posting
from tests.helpers import API, Account, assert_mastodon_error
from tests.integration.test_mastodon_oauth import bearer, register_app, user_token
from tests.integration.test_media import png_bytes


async def status(client: httpx.AsyncClient, author: Account, **form: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/statuses", data=form, headers=author.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_content_is_escaped_html_with_links_and_line_breaks() -> None:
    assert content_html("Hi <b>there</b> & you") == "<p>Hi &lt;b&gt;there&lt;/b&gt; &amp; you</p>"
    assert content_html("one\ntwo\n\nthree") == "<p>one<br>two</p><p>three</p>"
    linked = content_html('see https://example.org/a?b=1&c="x". Done')
    assert linked == (
        '<p>see <a href="https://example.org/a?b=1&amp;c=" rel="nofollow noopener" target="_blank">'
        "https://example.org/a?b=1&amp;c=</a>&quot;x&quot;. Done</p>"
    )
    assert content_html("javascript:alert(1) and (https://example.org).") == (
        "<p>javascript:alert(1) and ("
        '<a href="https://example.org" rel="nofollow noopener" target="_blank">https://example.org</a>).</p>'
    )


async def test_mentions_of_people_the_reader_may_see_are_links_and_listed(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cyd, eve = await posting.members(resources, "ada", "bob", "cyd", "eve")
    await posting.block(resources, cyd, eve)
    text = "hi @Bob, @cyd and @nobody; mail bob@example.org, see https://example.org/@bob"
    created = await client.post(
        "/api/v1/statuses", data={"status": text, "visibility": "public"}, headers=ada.headers
    )
    assert created.status_code == 200, created.text
    status = created.json()
    assert status["text"] == text
    base = resources.settings.public_url
    bob_page = f"{base}/users/{bob.id}"
    mention = (
        '<span class="h-card" translate="no"><a href="{}" class="u-url mention">@<span>{}</span></a></span>'
    )
    assert status["content"] == (
        f"<p>hi {mention.format(bob_page, 'bob')}, "
        f"{mention.format(f'{base}/users/{cyd.id}', 'cyd')} and @nobody; mail bob@example.org, "
        'see <a href="https://example.org/@bob" rel="nofollow noopener" target="_blank">'
        "https://example.org/@bob</a></p>"
    )
    assert [(item["username"], item["id"]) for item in status["mentions"]] == [
        ("bob", to_mastodon_id(bob.id)),
        ("cyd", to_mastodon_id(cyd.id)),
    ]
    # Eve and cyd are in a block: to eve, @cyd is text, in a timeline as anywhere else.
    public = await client.get("/api/v1/timelines/public", headers=eve.headers)
    (seen,) = [item for item in public.json() if item["id"] == status["id"]]
    assert [item["username"] for item in seen["mentions"]] == ["bob"]
    assert "@cyd and" in seen["content"] and f"users/{cyd.id}" not in seen["content"]
    # A reply mentions too.
    reply = await client.post(
        "/api/v1/statuses",
        data={"status": "thanks @ada", "in_reply_to_id": status["id"]},
        headers=bob.headers,
    )
    assert [item["username"] for item in reply.json()["mentions"]] == ["ada"]


async def test_a_status_is_a_kith_post_with_the_friends_only_default(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cyd = await posting.members(resources, "ada", "bob", "cyd")
    await posting.befriend(resources, ada, bob)
    image = await posting.upload(resources, ada)
    posted = await status(
        client,
        ada,
        status="Hello <friends>\nhttps://kith.example/x",
        **{"media_ids[]": to_mastodon_id(image)},
    )
    post_id = from_mastodon_id(posted["id"])
    assert post_id is not None
    assert posted["visibility"] == "private"
    assert posted["text"] == "Hello <friends>\nhttps://kith.example/x"
    assert posted["content"].startswith("<p>Hello &lt;friends&gt;<br><a href=")
    assert from_mastodon_id(posted["account"]["id"]) == ada.id
    assert [from_mastodon_id(m["id"]) for m in posted["media_attachments"]] == [image]
    assert posted["media_attachments"][0]["meta"]["original"]["width"] == 640
    assert posted["in_reply_to_id"] is None and posted["favourited"] is False
    # The same post in Kith's API, friends-only, with its image.
    kith = await posting.get_post(client, ada, post_id)
    assert kith["visibility"] == "friends" and [m["id"] for m in kith["media"]] == [image]
    # A friend reads it; anyone else gets 404, as in Kith.
    seen = await client.get(f"/api/v1/statuses/{posted['id']}", headers=bob.headers)
    assert seen.status_code == 200 and seen.json()["id"] == posted["id"]
    assert_mastodon_error(await client.get(f"/api/v1/statuses/{posted['id']}", headers=cyd.headers), 404)
    assert_mastodon_error(await client.get("/api/v1/statuses/12x", headers=bob.headers), 404)

    public = await status(client, ada, status="for all", visibility="public")
    assert public["visibility"] == "public"
    assert (await client.get(f"/api/v1/statuses/{public['id']}", headers=cyd.headers)).status_code == 200
    unlisted = await status(client, ada, status="also for all", visibility="unlisted")
    assert unlisted["visibility"] == "public"
    assert_mastodon_error(
        await client.post(
            "/api/v1/statuses", data={"status": "dm", "visibility": "direct"}, headers=ada.headers
        ),
        422,
    )
    assert_mastodon_error(
        await client.post("/api/v1/statuses", data={"status": " "}, headers=ada.headers), 422
    )


async def test_a_reply_is_a_comment_on_the_post_and_replies_to_replies_attach_to_it(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await posting.members(resources, "ada", "bob")
    await posting.befriend(resources, ada, bob)
    post = await status(client, ada, status="a question")
    reply = await status(client, bob, status="an answer", in_reply_to_id=post["id"])
    assert reply["in_reply_to_id"] == post["id"]
    assert from_mastodon_id(reply["in_reply_to_account_id"]) == ada.id
    assert reply["visibility"] == "private"
    again = await status(client, ada, status="thanks", in_reply_to_id=reply["id"])
    assert again["in_reply_to_id"] == post["id"], "Kith's comments do not nest"
    # Both are comments of the post in Kith's API.
    comments = await client.get(f"{API}/posts/{from_mastodon_id(post['id'])}/comments", headers=ada.headers)
    assert [to_mastodon_id(c["id"]) for c in comments.json()["items"]] == [reply["id"], again["id"]]

    context = await client.get(f"/api/v1/statuses/{post['id']}/context", headers=bob.headers)
    assert context.status_code == 200
    assert context.json()["ancestors"] == []
    assert [s["id"] for s in context.json()["descendants"]] == [reply["id"], again["id"]]
    of_reply = (await client.get(f"/api/v1/statuses/{reply['id']}/context", headers=bob.headers)).json()
    assert [s["id"] for s in of_reply["ancestors"]] == [post["id"]] and of_reply["descendants"] == []
    refreshed = (await client.get(f"/api/v1/statuses/{post['id']}", headers=bob.headers)).json()
    assert refreshed["replies_count"] == 2

    image = await posting.upload(resources, bob)
    assert_mastodon_error(
        await client.post(
            "/api/v1/statuses",
            data={"status": "pic", "in_reply_to_id": post["id"], "media_ids[]": to_mastodon_id(image)},
            headers=bob.headers,
        ),
        422,
    )


async def test_favourites_are_likes(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob, cyd = await posting.members(resources, "ada", "bob", "cyd")
    await posting.befriend(resources, ada, bob)
    post = await status(client, ada, status="like me", visibility="public")
    for _ in range(2):  # liking twice is one like
        liked = await client.post(f"/api/v1/statuses/{post['id']}/favourite", headers=bob.headers)
        assert liked.status_code == 200
        assert liked.json()["favourited"] is True and liked.json()["favourites_count"] == 1
    await client.post(f"/api/v1/statuses/{post['id']}/favourite", headers=cyd.headers)
    kith = await posting.get_post(client, ada, from_mastodon_id(post["id"]) or "")
    assert kith["like_count"] == 2
    by = await client.get(f"/api/v1/statuses/{post['id']}/favourited_by?limit=1", headers=ada.headers)
    assert by.status_code == 200
    assert [from_mastodon_id(a["id"]) for a in by.json()] == [cyd.id]
    following = by.headers["Link"].split(";")[0].strip("<>")
    assert following.startswith("https://kith.example/api/v1/statuses/")
    rest = await client.get(following.removeprefix("https://kith.example"), headers=ada.headers)
    assert [from_mastodon_id(a["id"]) for a in rest.json()] == [bob.id]

    unliked = await client.post(f"/api/v1/statuses/{post['id']}/unfavourite", headers=bob.headers)
    assert unliked.json()["favourited"] is False and unliked.json()["favourites_count"] == 1
    reply = await status(client, bob, status="hi", in_reply_to_id=post["id"])
    assert_mastodon_error(
        await client.post(f"/api/v1/statuses/{reply['id']}/favourite", headers=ada.headers), 422
    )


async def test_deleting_a_status_gives_its_text_back_and_only_the_author_may(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await posting.members(resources, "ada", "bob")
    await posting.befriend(resources, ada, bob)
    post = await status(client, ada, status="oops\ntypo")
    reply = await status(client, bob, status="ha", in_reply_to_id=post["id"])
    assert_mastodon_error(await client.delete(f"/api/v1/statuses/{post['id']}", headers=bob.headers), 404)
    gone_reply = await client.delete(f"/api/v1/statuses/{reply['id']}", headers=bob.headers)
    assert gone_reply.status_code == 200 and gone_reply.json()["text"] == "ha"
    gone = await client.delete(f"/api/v1/statuses/{post['id']}", headers=ada.headers)
    assert gone.status_code == 200 and gone.json()["text"] == "oops\ntypo"
    assert_mastodon_error(await client.get(f"/api/v1/statuses/{post['id']}", headers=ada.headers), 404)
    response = await client.get(f"{API}/posts/{from_mastodon_id(post['id'])}", headers=ada.headers)
    assert response.status_code == 404


async def test_statuses_take_mastodons_scopes(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await posting.member(resources, "ada")
    app = await register_app(client, scopes="read write")
    reader = bearer(await user_token(client, app, scope="read"))
    writer = bearer(await user_token(client, app, scope="write:statuses"))
    assert_mastodon_error(await client.post("/api/v1/statuses", data={"status": "x"}, headers=reader), 403)
    made = await client.post("/api/v1/statuses", data={"status": "x"}, headers=writer)
    assert made.status_code == 200, made.text
    assert (await client.get(f"/api/v1/statuses/{made.json()['id']}", headers=reader)).status_code == 200
    assert_mastodon_error(await client.get(f"/api/v1/statuses/{made.json()['id']}", headers=writer), 403)
    assert_mastodon_error(
        await client.post(f"/api/v1/statuses/{made.json()['id']}/favourite", headers=writer), 403
    )
    assert from_mastodon_id(made.json()["account"]["id"]) == ada.id


async def test_a_status_the_caller_may_not_read_is_404_on_every_route(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, eve = await posting.members(resources, "ada", "bob", "eve")
    await posting.befriend(resources, ada, bob)
    hidden = await status(client, ada, status="friends only")
    reply = await status(client, bob, status="a reply", in_reply_to_id=hidden["id"])
    for target in (hidden["id"], reply["id"]):
        for method, suffix in (
            ("GET", ""),
            ("DELETE", ""),
            ("GET", "/context"),
            ("POST", "/favourite"),
            ("POST", "/unfavourite"),
            ("GET", "/favourited_by"),
        ):
            response = await client.request(method, f"/api/v1/statuses/{target}{suffix}", headers=eve.headers)
            assert_mastodon_error(response, 404)
        replying = await client.post(
            "/api/v1/statuses", data={"status": "hi", "in_reply_to_id": target}, headers=eve.headers
        )
        assert_mastodon_error(replying, 404)
    # Another user's upload cannot be attached, as in Kith's API.
    image = await posting.upload(resources, ada)
    taken = await client.post(
        "/api/v1/statuses", data={"status": "mine", "media_ids[]": to_mastodon_id(image)}, headers=eve.headers
    )
    assert taken.status_code in (400, 404, 422), taken.text
    assert (await posting.get_post(client, ada, from_mastodon_id(hidden["id"]) or ""))["like_count"] == 0


async def test_an_image_uploaded_the_mastodon_way_goes_into_a_status(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await posting.members(resources, "ada", "bob")
    files = {"file": ("me.png", png_bytes((40, 30)), "image/png")}
    uploaded = await client.post(
        "/api/v2/media", files=files, data={"description": "a grey square"}, headers=ada.headers
    )
    assert uploaded.status_code == 200, uploaded.text
    attachment = uploaded.json()
    assert attachment["type"] == "image"
    assert attachment["meta"]["original"]["width"] == 40 and attachment["meta"]["original"]["height"] == 30
    served = await client.get(attachment["url"].removeprefix("https://kith.example"))
    assert served.status_code == 200 and served.content.startswith(b"\x89PNG")
    again = await client.get(f"/api/v1/media/{attachment['id']}", headers=ada.headers)
    assert again.status_code == 200 and again.json() == attachment
    assert_mastodon_error(await client.get(f"/api/v1/media/{attachment['id']}", headers=bob.headers), 404)
    # The older path, the same upload.
    older = await client.post("/api/v1/media", files=files, headers=ada.headers)
    assert older.status_code == 200, older.text

    posted = await status(
        client, ada, status="look", visibility="public", **{"media_ids[]": attachment["id"]}
    )
    assert [m["id"] for m in posted["media_attachments"]] == [attachment["id"]]
    # Kith's checks of the file hold: a file that is no image is refused.
    refused = await client.post(
        "/api/v2/media", files={"file": ("x.png", b"not an image", "image/png")}, headers=ada.headers
    )
    assert_mastodon_error(refused, 415)
    # Any other part than the file and what Mastodon apps send beside it is refused.
    extra = await client.post("/api/v2/media", files=files, data={"owner_id": "1"}, headers=ada.headers)
    assert_mastodon_error(extra, 422)


async def test_uploads_take_write_media(client: httpx.AsyncClient, resources: Resources) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client, scopes="read write")
    files = {"file": ("me.png", png_bytes(), "image/png")}
    statuses_only = bearer(await user_token(client, app, scope="write:statuses"))
    assert_mastodon_error(await client.post("/api/v2/media", files=files, headers=statuses_only), 403)
    media_writer = bearer(await user_token(client, app, scope="write:media"))
    assert (await client.post("/api/v2/media", files=files, headers=media_writer)).status_code == 200
    assert_mastodon_error(await client.post("/api/v2/media", files=files), 401)
