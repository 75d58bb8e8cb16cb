"""Reports through the HTTP API: reporting, the moderation queue, and its actions.

See docs/api.md#moderation-and-administration.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from kith.db.models import Role
from kith.runtime.resources import Resources
from tests.helpers import API, PASSWORD, Account, assert_problem, field_errors
from tests.posting import (
    audit_entries,
    befriend,
    block,
    comment,
    counted_rows,
    create_post,
    get_post,
    member,
    members,
    walk,
)

REPORT_FIELDS = {"id", "target_type", "target_id", "reason", "status", "created_at"}


async def report(
    client: httpx.AsyncClient, reporter: Account, target_type: str, target_id: str, reason: str = "spam"
) -> httpx.Response:
    body = {"target_type": target_type, "target_id": target_id, "reason": reason}
    return await client.post(f"{API}/reports", json=body, headers=reporter.headers)


async def reported(client: httpx.AsyncClient, reporter: Account, target_type: str, target_id: str) -> str:
    response = await report(client, reporter, target_type, target_id)
    assert response.status_code == 201, response.text
    report_id: str = response.json()["id"]
    return report_id


async def act(client: httpx.AsyncClient, moderator: Account, report_id: str, action: str) -> httpx.Response:
    return await client.patch(
        f"{API}/moderation/reports/{report_id}", json={"action": action}, headers=moderator.headers
    )


async def queue(client: httpx.AsyncClient, moderator: Account, status: str = "open") -> list[dict[str, Any]]:
    return await walk(client, moderator, "/moderation/reports", 100, status=status)


# --- reporting ------------------------------------------------------------------------


async def test_report_a_post_a_comment_and_a_user(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob = await members(resources, "ada", "bob")
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    comment_id = (await comment(client, ada, post_id))["id"]
    for target_type, target_id in (("post", post_id), ("comment", comment_id), ("user", ada.id)):
        response = await report(client, bob, target_type, target_id, reason="  Spam, again  ")
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == REPORT_FIELDS
        assert (body["target_type"], body["target_id"], body["reason"], body["status"]) == (
            target_type,
            target_id,
            "Spam, again",
            "open",
        )
        assert body["created_at"].endswith("Z")


async def test_cannot_report_what_one_cannot_see(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, friend, stranger, blocker = await members(resources, "ada", "friend", "stranger", "blocker")
    await befriend(resources, ada, friend)
    post_id = (await create_post(client, ada, visibility="friends"))["id"]
    comment_id = (await comment(client, friend, post_id))["id"]
    await block(resources, blocker, stranger)
    missing = "0190c0de-0000-7000-8000-000000000000"
    for target_type, target_id, code in (
        ("post", post_id, "post_not_found"),
        ("comment", comment_id, "comment_not_found"),
        ("user", blocker.id, "user_not_found"),
        ("post", missing, "post_not_found"),
        ("comment", missing, "comment_not_found"),
        ("user", missing, "user_not_found"),
    ):
        assert_problem(await report(client, stranger, target_type, target_id), 404, code)
    moderator = await member(resources, "moder", Role.moderator)
    assert await queue(client, moderator) == []


async def test_one_open_report_per_reporter_and_target(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cy = await members(resources, "ada", "bob", "cy")
    moderator = await member(resources, "moder", Role.moderator)
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    first = await reported(client, bob, "post", post_id)
    assert_problem(await report(client, bob, "post", post_id, reason="really"), 409, "already_reported")
    # Someone else may still report it, and bob may report the author.
    await reported(client, cy, "post", post_id)
    await reported(client, bob, "user", ada.id)
    # Once bob's report is handled, he may report the post again.
    assert (await act(client, moderator, first, "dismiss")).status_code == 200
    await reported(client, bob, "post", post_id)


async def test_cannot_report_oneself(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    post_id = (await create_post(client, ada))["id"]
    comment_id = (await comment(client, ada, post_id))["id"]
    for target_type, target_id in (("user", ada.id), ("post", post_id), ("comment", comment_id)):
        assert_problem(await report(client, ada, target_type, target_id), 400, "cannot_report_self")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target_type": "post", "target_id": "x"}, "body.reason"),
        ({"target_type": "post", "target_id": "x", "reason": "  "}, "body.reason"),
        ({"target_type": "post", "target_id": "x", "reason": "x" * 1001}, "body.reason"),
        ({"target_type": "group", "target_id": "x", "reason": "spam"}, "body.target_type"),
        ({"target_type": "post", "target_id": "x" * 37, "reason": "spam"}, "body.target_id"),
        ({"target_type": "post", "target_id": "x", "reason": "spam", "status": "resolved"}, "body.status"),
    ],
)
async def test_report_rejects_invalid_bodies(
    client: httpx.AsyncClient, resources: Resources, body: dict[str, Any], field: str
) -> None:
    ada = await member(resources, "ada")
    response = await client.post(f"{API}/reports", json=body, headers=ada.headers)
    assert_problem(response, 422)
    assert field in field_errors(response)


# --- the queue ------------------------------------------------------------------------


async def test_queue_is_for_staff_only(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    assert_problem(
        await client.get(f"{API}/moderation/reports", headers=ada.headers), 403, "insufficient_role"
    )
    assert_problem(await act(client, ada, "whatever", "dismiss"), 403, "insufficient_role")
    assert_problem(await client.get(f"{API}/moderation/reports"), 401)
    for role in (Role.moderator, Role.admin):
        staff_member = await member(resources, f"staff_{role}", role)
        response = await client.get(f"{API}/moderation/reports", headers=staff_member.headers)
        assert response.status_code == 200
        assert response.json() == {"items": [], "next_cursor": None}


async def test_queue_shows_reporter_and_target_newest_first(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await members(resources, "ada", "bob")
    moderator = await member(resources, "moder", Role.moderator)
    long_text = "word " * 100
    post_id = (await create_post(client, ada, content=long_text, visibility="private"))["id"]
    await befriend(resources, ada, bob)
    await client.patch(f"{API}/posts/{post_id}", json={"visibility": "friends"}, headers=ada.headers)
    comment_id = (await comment(client, ada, post_id, "rude words"))["id"]
    ids = [
        await reported(client, bob, "post", post_id),
        await reported(client, bob, "comment", comment_id),
        await reported(client, bob, "user", ada.id),
    ]
    items = await walk(client, moderator, "/moderation/reports", 2)
    assert [item["id"] for item in items] == ids[::-1]
    user_report, comment_report, post_report = items
    assert post_report["reporter"] == {
        "id": bob.id,
        "username": "bob",
        "display_name": "Bob",
        "avatar_url": None,
    }
    assert (post_report["status"], post_report["resolution"], post_report["resolved_at"]) == (
        "open",
        None,
        None,
    )
    assert post_report["target"]["author"]["id"] == ada.id
    assert len(post_report["target"]["excerpt"]) == 280
    assert long_text.strip().startswith(post_report["target"]["excerpt"][:-1])
    assert comment_report["target"]["excerpt"] == "rude words"
    assert comment_report["target"]["post_id"] == post_id
    assert user_report["target"]["author"]["username"] == "ada"

    # A target deleted meanwhile shows as null.
    await client.delete(f"{API}/comments/{comment_id}", headers=ada.headers)
    items = await queue(client, moderator)
    assert [item["target"] is None for item in items] == [False, True, False]


async def test_queue_filters_by_status(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob = await members(resources, "ada", "bob")
    moderator = await member(resources, "moder", Role.moderator)
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    kept = await reported(client, bob, "post", post_id)
    dismissed = await reported(client, bob, "user", ada.id)
    await act(client, moderator, dismissed, "dismiss")
    assert [item["id"] for item in await queue(client, moderator)] == [kept]
    assert [item["id"] for item in await queue(client, moderator, "dismissed")] == [dismissed]
    assert await queue(client, moderator, "resolved") == []
    response = await client.get(f"{API}/moderation/reports?status=closed", headers=moderator.headers)
    assert_problem(response, 422)


# --- acting on reports ----------------------------------------------------------------


async def test_dismiss_leaves_the_content_and_is_audited(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cy = await members(resources, "ada", "bob", "cy")
    moderator = await member(resources, "moder", Role.moderator)
    admin = await member(resources, "root", Role.admin)
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    first = await reported(client, bob, "post", post_id)
    second = await reported(client, cy, "post", post_id)

    response = await act(client, moderator, first, "dismiss")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["resolution"], body["resolved_by_id"]) == (
        "dismissed",
        "dismissed",
        moderator.id,
    )
    assert body["resolved_at"].endswith("Z")
    assert body["target"]["author"]["id"] == ada.id
    assert_problem(await act(client, moderator, first, "dismiss"), 409, "not_open")
    assert_problem(await act(client, admin, first, "remove_content"), 409, "not_open")
    # Dismissing one report leaves the others on the same target open.
    assert [item["id"] for item in await queue(client, moderator)] == [second]
    assert (await get_post(client, ada, post_id))["id"] == post_id

    [entry] = await audit_entries(client, admin, "report.dismissed")
    assert (entry["actor_id"], entry["target_type"], entry["target_id"]) == (moderator.id, "report", first)
    assert entry["details"] == {"reported_type": "post", "reported_id": post_id}


async def test_removing_a_reported_post_resolves_all_its_reports(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cy = await members(resources, "ada", "bob", "cy")
    moderator = await member(resources, "moder", Role.moderator)
    admin = await member(resources, "root", Role.admin)
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    other_post = (await create_post(client, ada, visibility="public"))["id"]
    await client.post(f"{API}/posts/{post_id}/like", headers=bob.headers)
    await comment(client, cy, post_id)
    first = await reported(client, bob, "post", post_id)
    second = await reported(client, cy, "post", post_id)
    unrelated = await reported(client, bob, "post", other_post)

    response = await act(client, moderator, second, "remove_content")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["resolution"], body["target"]) == ("resolved", "content_removed", None)
    assert_problem(await client.get(f"{API}/posts/{post_id}", headers=ada.headers), 404)
    assert [item["id"] for item in await queue(client, moderator)] == [unrelated]
    resolved = await queue(client, moderator, "resolved")
    assert sorted(item["id"] for item in resolved) == sorted([first, second])
    assert {(item["resolution"], item["resolved_by_id"]) for item in resolved} == {
        ("content_removed", moderator.id)
    }
    assert_problem(await act(client, moderator, first, "dismiss"), 409, "not_open")

    [removed] = await audit_entries(client, admin, "post.removed")
    assert (removed["actor_id"], removed["target_id"]) == (moderator.id, post_id)
    assert removed["details"] == {"author_id": ada.id, "report_id": second}
    [resolution] = await audit_entries(client, admin, "report.resolved")
    assert sorted(resolution["details"]["reports_closed"]) == sorted([first, second])


async def test_removing_a_reported_comment_keeps_the_count_right(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await members(resources, "ada", "bob")
    admin = await member(resources, "root", Role.admin)
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    comment_id = (await comment(client, bob, post_id, "nasty"))["id"]
    await comment(client, bob, post_id, "fine")
    report_id = await reported(client, ada, "comment", comment_id)

    response = await act(client, admin, report_id, "remove_content")
    assert response.status_code == 200, response.text
    assert response.json()["resolution"] == "content_removed"
    assert [item["content"] for item in await walk(client, ada, f"/posts/{post_id}/comments", 10)] == ["fine"]
    assert await counted_rows(resources, post_id) == (0, 0, 1, 1)
    [removed] = await audit_entries(client, admin, "comment.removed")
    assert (removed["actor_id"], removed["target_id"]) == (admin.id, comment_id)
    assert removed["details"]["report_id"] == report_id


async def test_removing_a_reported_user_suspends_them_at_once(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    troll, bob = await members(resources, "troll", "bob")
    moderator = await member(resources, "moder", Role.moderator)
    admin = await member(resources, "root", Role.admin)
    post_id = (await create_post(client, troll, visibility="public"))["id"]
    report_id = await reported(client, bob, "user", troll.id)
    assert (await client.get(f"{API}/users/me", headers=troll.headers)).status_code == 200

    response = await act(client, moderator, report_id, "remove_content")
    assert response.status_code == 200, response.text
    assert response.json()["resolution"] == "user_suspended"
    assert_problem(await client.get(f"{API}/users/me", headers=troll.headers), 401)
    login = await client.post(f"{API}/auth/login", json={"username": "troll", "password": PASSWORD})
    assert_problem(login, 403, "account_suspended")
    assert_problem(await client.get(f"{API}/posts/{post_id}", headers=bob.headers), 404)
    [entry] = await audit_entries(client, admin, "user.suspended")
    assert (entry["actor_id"], entry["target_id"], entry["details"]) == (
        moderator.id,
        troll.id,
        {"report_id": report_id},
    )


async def test_staff_accounts_are_not_suspended_through_reports(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    bob = await member(resources, "bob")
    moderator, other = (
        await member(resources, "moder", Role.moderator),
        await member(resources, "other", Role.moderator),
    )
    report_id = await reported(client, bob, "user", other.id)
    assert_problem(await act(client, moderator, report_id, "remove_content"), 400, "cannot_suspend_staff")
    assert (await client.get(f"{API}/users/me", headers=other.headers)).status_code == 200
    assert [item["id"] for item in await queue(client, moderator)] == [report_id]


async def test_removing_content_that_is_already_gone_resolves_the_report(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await members(resources, "ada", "bob")
    moderator = await member(resources, "moder", Role.moderator)
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    report_id = await reported(client, bob, "post", post_id)
    await client.delete(f"{API}/posts/{post_id}", headers=ada.headers)
    response = await act(client, moderator, report_id, "remove_content")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["resolution"]) == ("resolved", "already_removed")


async def test_unknown_report_and_bad_action(client: httpx.AsyncClient, resources: Resources) -> None:
    ada, bob = await members(resources, "ada", "bob")
    moderator = await member(resources, "moder", Role.moderator)
    assert_problem(await act(client, moderator, "nope", "dismiss"), 404, "report_not_found")
    report_id = await reported(client, bob, "user", ada.id)
    response = await act(client, moderator, report_id, "ban")
    assert_problem(response, 422)
    assert "body.action" in field_errors(response)


# --- races ----------------------------------------------------------------------------


async def test_identical_reports_at_once_make_one_report(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob = await members(resources, "ada", "bob")
    moderator = await member(resources, "moder", Role.moderator)
    responses = await asyncio.gather(*(report(client, bob, "user", ada.id) for _ in range(5)))
    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409, 409]
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "already_reported")
    assert len(await queue(client, moderator)) == 1


async def test_two_moderators_removing_the_same_post_at_once(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada, bob, cy = await members(resources, "ada", "bob", "cy")
    first_moderator = await member(resources, "moder", Role.moderator)
    second_moderator = await member(resources, "root", Role.admin)
    post_id = (await create_post(client, ada, visibility="public"))["id"]
    await comment(client, bob, post_id)
    reports = [await reported(client, bob, "post", post_id), await reported(client, cy, "post", post_id)]

    responses = await asyncio.gather(
        act(client, first_moderator, reports[0], "remove_content"),
        act(client, second_moderator, reports[1], "remove_content"),
    )
    assert sorted(response.status_code for response in responses) == [200, 409]
    assert_problem(next(response for response in responses if response.status_code == 409), 409, "not_open")
    assert_problem(await client.get(f"{API}/posts/{post_id}", headers=ada.headers), 404)
    assert await queue(client, first_moderator) == []
    removals = await audit_entries(client, second_moderator, "post.removed")
    assert len(removals) == 1
