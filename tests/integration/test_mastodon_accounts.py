"""Mastodon's accounts from Kith's users (docs/mastodon.md#accounts)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import httpx

from kith.db.models import Friendship
from kith.mastodon.ids import from_mastodon_id, to_mastodon_id
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests import posting
from tests.helpers import API, Account, assert_mastodon_error
from tests.integration.test_mastodon_oauth import bearer, register_app, user_token

DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def test_verify_credentials_is_the_users_own_account(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cyd = await posting.members(resources, "ada", "bob", "cyd")
    await posting.befriend(resources, ada, bob)
    await posting.create_post(client, ada, content="one")
    await posting.create_post(client, ada, content="two", visibility="private")
    await client.patch(f"{API}/users/me", json={"bio": "Hi <there>\nsecond line"}, headers=ada.headers)
    await client.post(f"{API}/friend-requests", json={"receiver_id": ada.id}, headers=cyd.headers)
    response = await client.get("/api/v1/accounts/verify_credentials", headers=ada.headers)
    assert response.status_code == 200, response.text
    account = response.json()
    assert from_mastodon_id(account["id"]) == ada.id
    assert account["username"] == account["acct"] == "ada"
    assert account["display_name"] == "Ada"
    assert account["locked"] is True and account["bot"] is False
    assert account["note"] == "<p>Hi &lt;there&gt;<br>second line</p>"
    assert account["followers_count"] == account["following_count"] == 1
    assert account["statuses_count"] == 2
    assert DATETIME.fullmatch(account["created_at"]) and account["created_at"].endswith("T00:00:00.000Z")
    assert account["url"] == f"https://kith.example/users/{ada.id}"
    assert account["avatar"].startswith("https://kith.example/")
    assert account["emojis"] == [] and account["fields"] == []
    assert account["source"] == {
        "privacy": "private",
        "sensitive": False,
        "language": None,
        "note": "Hi <there>\nsecond line",
        "fields": [],
        "follow_requests_count": 1,
    }


async def test_verify_credentials_takes_read_accounts_or_profile(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    await posting.member(resources, "ada")
    app = await register_app(client, scopes="read write profile")
    for scope, status in (("profile", 200), ("read:accounts", 200), ("read", 200), ("write", 403)):
        token = await user_token(client, app, scope=scope)
        response = await client.get("/api/v1/accounts/verify_credentials", headers=bearer(token))
        assert response.status_code == status, (scope, response.text)
    assert_mastodon_error(await client.get("/api/v1/accounts/verify_credentials"), 401, "not_authenticated")


def mid(account: Account) -> str:
    """An account's id as Mastodon apps see it."""
    return to_mastodon_id(account.id)


async def relationship(client: httpx.AsyncClient, viewer: Account, other: Account) -> dict[str, Any]:
    response = await client.get(f"/api/v1/accounts/relationships?id[]={mid(other)}", headers=viewer.headers)
    assert response.status_code == 200, response.text
    (found,) = response.json()
    return dict(found)


async def test_a_follow_is_a_friend_request_and_authorizing_it_makes_friends(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await posting.members(resources, "ada", "bob")
    followed = await client.post(f"/api/v1/accounts/{mid(bob)}/follow", headers=ada.headers)
    assert followed.status_code == 200, followed.text
    body = followed.json()
    assert body["id"] == mid(bob)
    assert (body["following"], body["requested"], body["followed_by"]) == (False, True, False)
    # Following again changes nothing (Mastodon's answer, not Kith's 409).
    assert (await client.post(f"/api/v1/accounts/{mid(bob)}/follow", headers=ada.headers)).json() == body
    # Bob sees it as a follow request, with Ada's account, and in Kith's own list.
    requests = await client.get("/api/v1/follow_requests", headers=bob.headers)
    assert [account["username"] for account in requests.json()] == ["ada"]
    assert (await relationship(client, bob, ada))["requested_by"] is True
    kith_list = await client.get(
        f"{API}/friend-requests?direction=incoming&status=pending", headers=bob.headers
    )
    assert len(kith_list.json()["items"]) == 1
    authorized = await client.post(f"/api/v1/follow_requests/{mid(ada)}/authorize", headers=bob.headers)
    assert authorized.status_code == 200, authorized.text
    assert authorized.json()["following"] is True and authorized.json()["followed_by"] is True
    for viewer, other in ((ada, bob), (bob, ada)):
        found = await relationship(client, viewer, other)
        assert (found["following"], found["followed_by"], found["requested"]) == (True, True, False)
    assert (await client.get("/api/v1/follow_requests", headers=bob.headers)).json() == []
    account = (await client.get(f"/api/v1/accounts/{mid(ada)}", headers=bob.headers)).json()
    assert account["followers_count"] == account["following_count"] == 1
    # Unfollowing ends the friendship for both.
    unfollowed = await client.post(f"/api/v1/accounts/{mid(bob)}/unfollow", headers=ada.headers)
    assert unfollowed.json()["following"] is False and unfollowed.json()["followed_by"] is False
    assert (await relationship(client, bob, ada))["following"] is False


async def test_a_follow_of_someone_who_asked_first_makes_friends_at_once(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await posting.members(resources, "ada", "bob")
    await client.post(f"/api/v1/accounts/{mid(ada)}/follow", headers=bob.headers)
    body = (await client.post(f"/api/v1/accounts/{mid(bob)}/follow", headers=ada.headers)).json()
    assert body["following"] is True and body["followed_by"] is True


async def test_unfollowing_a_waiting_request_withdraws_it_and_rejecting_declines(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cyd = await posting.members(resources, "ada", "bob", "cyd")
    await client.post(f"/api/v1/accounts/{mid(bob)}/follow", headers=ada.headers)
    withdrawn = await client.post(f"/api/v1/accounts/{mid(bob)}/unfollow", headers=ada.headers)
    assert withdrawn.json()["requested"] is False
    assert (await client.get("/api/v1/follow_requests", headers=bob.headers)).json() == []
    await client.post(f"/api/v1/accounts/{mid(bob)}/follow", headers=cyd.headers)
    rejected = await client.post(f"/api/v1/follow_requests/{mid(cyd)}/reject", headers=bob.headers)
    assert rejected.status_code == 200 and rejected.json()["requested_by"] is False
    # Kith's rule holds: a declined sender may ask again only after 24 hours.
    again = await client.post(f"/api/v1/accounts/{mid(bob)}/follow", headers=cyd.headers)
    assert_mastodon_error(again, 400, "request_rejected_recently")
    nothing = await client.post(f"/api/v1/follow_requests/{mid(ada)}/authorize", headers=bob.headers)
    assert_mastodon_error(nothing, 404, "friend_request_not_found")


async def test_blocking_ends_the_friendship_and_hides_both_ways(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await posting.members(resources, "ada", "bob")
    await posting.befriend(resources, ada, bob)
    blocked = await client.post(f"/api/v1/accounts/{mid(bob)}/block", headers=ada.headers)
    assert blocked.status_code == 200, blocked.text
    assert blocked.json()["blocking"] is True and blocked.json()["following"] is False
    assert (await client.post(f"/api/v1/accounts/{mid(bob)}/block", headers=ada.headers)).json()["blocking"]
    # To Bob, Ada does not exist: no account, no relationship, no follow, no lookup.
    assert_mastodon_error(
        await client.get(f"/api/v1/accounts/{mid(ada)}", headers=bob.headers), 404, "user_not_found"
    )
    hidden = await client.get(f"/api/v1/accounts/relationships?id[]={mid(ada)}", headers=bob.headers)
    assert hidden.json() == []
    assert_mastodon_error(await client.post(f"/api/v1/accounts/{mid(ada)}/follow", headers=bob.headers), 404)
    assert_mastodon_error(await client.post(f"/api/v1/accounts/{mid(ada)}/unblock", headers=bob.headers), 404)
    assert_mastodon_error(await client.get("/api/v1/accounts/lookup?acct=ada", headers=bob.headers), 404)
    unblocked = await client.post(f"/api/v1/accounts/{mid(bob)}/unblock", headers=ada.headers)
    assert unblocked.json()["blocking"] is False
    assert (await client.get(f"/api/v1/accounts/{mid(ada)}", headers=bob.headers)).status_code == 200


async def test_accounts_are_found_by_id_lookup_and_search(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, sus = await posting.members(resources, "ada", "bob", "bobsus")
    await posting.set_suspended(resources, sus)
    by_id = await client.get(f"/api/v1/accounts/{mid(bob)}/", headers=ada.headers)
    assert by_id.json()["username"] == "bob" and "source" not in by_id.json()
    for acct in ("bob", "@bob", "BOB", "bob@kith.example"):
        found = await client.get("/api/v1/accounts/lookup", params={"acct": acct}, headers=ada.headers)
        assert found.status_code == 200 and found.json()["id"] == mid(bob), acct
    for acct in ("bob@elsewhere.example", "bob@example.com", "nobody", "bobsus"):
        missing = await client.get("/api/v1/accounts/lookup", params={"acct": acct}, headers=ada.headers)
        assert_mastodon_error(missing, 404, "user_not_found")
    for bad in ("123", "abc", str(1 << 130), mid(sus)):
        assert_mastodon_error(await client.get(f"/api/v1/accounts/{bad}", headers=ada.headers), 404)
    results = (
        await client.get("/api/v2/search", params={"q": "bo", "type": "accounts"}, headers=ada.headers)
    ).json()
    assert [account["username"] for account in results["accounts"]] == ["bob"]
    assert results["statuses"] == [] and results["hashtags"] == []
    statuses = await client.get("/api/v2/search", params={"q": "bo", "type": "statuses"}, headers=ada.headers)
    assert statuses.json()["accounts"] == []


async def test_update_credentials_changes_the_name_and_bio_by_kiths_rules(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await posting.member(resources, "ada")
    response = await client.patch(
        "/api/v1/accounts/update_credentials",
        data={"display_name": "Ada L.", "note": "Counting\nengines", "locked": "false"},
        headers=ada.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["display_name"] == "Ada L."
    assert response.json()["source"]["note"] == "Counting\nengines"
    me = (await client.get(f"{API}/users/me", headers=ada.headers)).json()
    assert (me["display_name"], me["bio"]) == ("Ada L.", "Counting\nengines")
    too_long = await client.patch(
        "/api/v1/accounts/update_credentials", data={"note": "x" * 501}, headers=ada.headers
    )
    body = assert_mastodon_error(too_long, 422, "validation_error")
    assert body["error"].startswith("Validation failed") and body["details"][0]["field"] == "bio"


async def test_follow_requests_come_in_pages_with_a_link(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, *others = await posting.members(resources, "ada", "bob", "cyd", "dan")
    for other in others:
        await client.post(f"/api/v1/accounts/{mid(ada)}/follow", headers=other.headers)
    first = await client.get("/api/v1/follow_requests?limit=2", headers=ada.headers)
    assert [account["username"] for account in first.json()] == ["dan", "cyd"]
    link = first.headers["link"]
    assert link.startswith("<https://kith.example/api/v1/follow_requests?") and 'rel="next"' in link
    following = link[link.index("/api/v1/") : link.index(">")]
    second = await client.get(following, headers=ada.headers)
    assert [account["username"] for account in second.json()] == ["bob"]
    assert "link" not in second.headers


async def test_scopes_guard_the_account_routes(client: httpx.AsyncClient, resources: Resources) -> None:
    _ada, bob = await posting.members(resources, "ada", "bob")
    app = await register_app(client)
    reader = await user_token(client, app, scope="read")
    follower = await user_token(client, app, scope="follow")
    assert_mastodon_error(
        await client.post(f"/api/v1/accounts/{mid(bob)}/follow", headers=bearer(reader)),
        403,
        "insufficient_scope",
    )
    assert (
        await client.post(f"/api/v1/accounts/{mid(bob)}/follow", headers=bearer(follower))
    ).status_code == 200
    assert (await client.get(f"/api/v1/accounts/{mid(bob)}", headers=bearer(follower))).status_code == 403
    assert (await client.get(f"/api/v1/accounts/{mid(bob)}", headers=bearer(reader))).status_code == 200


# --- followers and following ----------------------------------------------------------------


async def befriend_at(resources: Resources, first: Account, second: Account, since: datetime) -> None:
    """A friendship that began at `since` (both of its rows)."""
    async with unit_of_work(resources) as session:
        session.add_all(
            [
                Friendship(user_id=first.id, friend_id=second.id, created_at=since),
                Friendship(user_id=second.id, friend_id=first.id, created_at=since),
            ]
        )


def usernames(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [account["username"] for account in response.json()]


def links(response: httpx.Response) -> dict[str, str]:
    """The `Link` header's addresses by `rel`, as paths with their query."""
    found = re.findall(r'<https://kith\.example(/[^>]+)>; rel="(\w+)"', response.headers.get("link", ""))
    return {rel: path for path, rel in found}


async def test_followers_and_following_are_the_friends_the_caller_may_see(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cyd, dan, eve, fay = await posting.members(resources, "ada", "bob", "cyd", "dan", "eve", "fay")
    start = resources.clock.now()
    for minutes, friend in enumerate((bob, cyd, dan, eve)):
        await befriend_at(resources, ada, friend, start - timedelta(minutes=10 - minutes))
    # Bob blocks Dan, Eve is suspended, and Fay asked Ada but is no friend yet.
    await posting.block(resources, bob, dan)
    await posting.set_suspended(resources, eve)
    await client.post(f"/api/v1/accounts/{mid(ada)}/follow", headers=fay.headers)
    for path in ("followers", "following"):
        # Newest friendship first; to Bob, Dan (blocked) and Eve (suspended) are not there.
        seen_by_bob = await client.get(f"/api/v1/accounts/{mid(ada)}/{path}", headers=bob.headers)
        assert usernames(seen_by_bob) == ["cyd", "bob"]
        first = seen_by_bob.json()[0]
        assert first["id"] == mid(cyd) and first["acct"] == "cyd" and first["followers_count"] == 1
        seen_by_ada = await client.get(f"/api/v1/accounts/{mid(ada)}/{path}", headers=ada.headers)
        assert usernames(seen_by_ada) == ["dan", "cyd", "bob"]
        assert usernames(await client.get(f"/api/v1/accounts/{mid(bob)}/{path}", headers=cyd.headers)) == [
            "ada"
        ]
        # The lists of an account hidden from the caller are 404, as the account is.
        assert_mastodon_error(
            await client.get(f"/api/v1/accounts/{mid(dan)}/{path}", headers=bob.headers),
            404,
            "user_not_found",
        )
        assert_mastodon_error(
            await client.get(f"/api/v1/accounts/{mid(bob)}/{path}", headers=dan.headers),
            404,
            "user_not_found",
        )
        assert_mastodon_error(
            await client.get(f"/api/v1/accounts/{mid(eve)}/{path}", headers=bob.headers),
            404,
            "user_not_found",
        )
        assert_mastodon_error(
            await client.get(f"/api/v1/accounts/12345/{path}", headers=bob.headers), 404, "user_not_found"
        )
        assert usernames(await client.get(f"/api/v1/accounts/{mid(fay)}/{path}", headers=bob.headers)) == []


async def test_followers_come_in_pages_with_links_to_the_end(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, *friends = await posting.members(resources, "ada", "f1", "f2", "f3", "f4", "f5", "f6", "f7")
    start = resources.clock.now() - timedelta(hours=1)
    # Seven friends; the last two at the same moment, ordered between them by id.
    for minutes, friend in enumerate(friends):
        await befriend_at(resources, ada, friend, start + timedelta(minutes=min(minutes, 5)))
    tied = sorted(friends[5:], key=lambda friend: friend.id, reverse=True)
    newest_first = [friend.username for friend in tied] + [
        friend.username for friend in reversed(friends[:5])
    ]
    everyone = usernames(await client.get(f"/api/v1/accounts/{mid(ada)}/followers", headers=ada.headers))
    assert everyone == newest_first
    # Walking `next`: every friend once, in order, and the last page says there is no more.
    seen: list[str] = []
    pages = []
    path = f"/api/v1/accounts/{mid(ada)}/followers?limit=3"
    while path:
        page = await client.get(path, headers=ada.headers)
        pages.append(page)
        seen += usernames(page)
        assert len(page.json()) <= 3
        path = links(page).get("next", "")
    assert seen == newest_first
    assert [len(page.json()) for page in pages] == [3, 3, 1]
    assert set(links(pages[-1])) == {"prev"}
    # The four after the first page, in a page of four: it is the last, and says so.
    exact = await client.get(links(pages[0])["next"].replace("limit=3", "limit=4"), headers=ada.headers)
    assert usernames(exact) == newest_first[3:] and "next" not in links(exact)
    # `prev` (min_id) asks for the friends right above a page, newest first.
    assert usernames(await client.get(links(pages[2])["prev"], headers=ada.headers)) == newest_first[3:6]
    assert usernames(await client.get(links(pages[1])["prev"], headers=ada.headers)) == newest_first[:3]
    newer = await client.get(links(pages[0])["prev"], headers=ada.headers)
    assert usernames(newer) == [] and "link" not in newer.headers
    # `since_id`: the newest friends above a place; with `max_id`, those between two places.
    first_oldest = links(pages[0])["next"].rsplit("max_id=", 1)[1]
    second_oldest = links(pages[1])["next"].rsplit("max_id=", 1)[1]
    last_newest = links(pages[2])["prev"].rsplit("min_id=", 1)[1]
    following = f"/api/v1/accounts/{mid(ada)}/following"
    since = await client.get(f"{following}?limit=2&since_id={last_newest}", headers=ada.headers)
    assert usernames(since) == newest_first[:2]
    between = f"{following}?max_id={first_oldest}"
    assert (
        usernames(await client.get(f"{between}&min_id={last_newest}", headers=ada.headers))
        == (newest_first[3:6])
    )
    assert (
        usernames(await client.get(f"{between}&since_id={second_oldest}", headers=ada.headers))
        == (newest_first[3:5])
    )
    # A limit above 80 is taken as 80 (the links say so); an id that names no place is refused.
    most = await client.get(f"{following}?limit=500", headers=ada.headers)
    assert len(most.json()) == 7 and "limit=80&" in links(most)["prev"]
    assert_mastodon_error(
        await client.get(f"/api/v1/accounts/{mid(ada)}/followers?max_id=abc", headers=ada.headers),
        422,
        "validation_error",
    )
    assert_mastodon_error(
        await client.get(f"/api/v1/accounts/{mid(ada)}/followers?min_id={'9' * 61}", headers=ada.headers),
        422,
        "validation_error",
    )


async def test_min_id_reads_down_past_one_page_of_friends(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    """Kith pages friends downwards, a page of 80 at a time: the friends right above a place
    far down the list are found across pages."""
    ada, *friends = await posting.members(resources, "ada", *(f"f{number:02}" for number in range(90)))
    start = resources.clock.now() - timedelta(hours=2)
    for minutes, friend in enumerate(friends):
        await befriend_at(resources, ada, friend, start + timedelta(minutes=minutes))
    followers = f"/api/v1/accounts/{mid(ada)}/followers"
    oldest = await client.get(f"{followers}?limit=80", headers=ada.headers)
    assert usernames(oldest)[-1] == "f10"
    bottom = links(oldest)["next"].rsplit("max_id=", 1)[1]
    last = await client.get(f"{followers}?max_id={bottom}", headers=ada.headers)
    assert usernames(last) == [f"f{number:02}" for number in range(9, -1, -1)] and "next" not in links(last)
    above = links(last)["prev"]
    assert usernames(await client.get(above, headers=ada.headers)) == [
        f"f{number:02}" for number in range(49, 9, -1)
    ]
    # Above f05, the walk reads a whole page of 80 (f89 to f10) and then a second.
    five = await client.get(f"{followers}?max_id={bottom}&limit=5", headers=ada.headers)
    assert usernames(five)[-1] == "f05"
    f05 = links(five)["next"].rsplit("max_id=", 1)[1]
    assert usernames(await client.get(f"{followers}?min_id={f05}", headers=ada.headers)) == [
        f"f{number:02}" for number in range(45, 5, -1)
    ]
    assert usernames(await client.get(f"{followers}?min_id={f05}&limit=80", headers=ada.headers)) == [
        f"f{number:02}" for number in range(85, 5, -1)
    ]


async def test_followers_and_following_need_read_accounts(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await posting.members(resources, "ada", "bob")
    await posting.befriend(resources, ada, bob)
    app = await register_app(client)
    for scope, status in (("read", 200), ("read:accounts", 200), ("read:follows", 403), ("follow", 403)):
        token = bearer(await user_token(client, app, scope=scope))
        for path in ("followers", "following"):
            response = await client.get(f"/api/v1/accounts/{mid(bob)}/{path}", headers=token)
            assert response.status_code == status, (scope, response.text)
    assert_mastodon_error(
        await client.get(f"/api/v1/accounts/{mid(bob)}/followers"), 401, "not_authenticated"
    )
