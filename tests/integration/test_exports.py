"""Exports of an account's data (docs/export.md): the archive equals what the API answers,
links work once and for their owner only, one export a day, archives expire and go with
the account."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
import zipfile
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from kith.core.config import Settings
from kith.db.models import Export, ExportStatus
from kith.exports.archive import archive_path, partial_path
from kith.exports.jobs import remove_expired_exports
from kith.main import create_app, open_resources
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.conftest import REDIS_URL, Mailbox, redis_available
from tests.helpers import API, PASSWORD, Account, assert_problem
from tests.integration.test_media import gif_bytes, png_bytes, uploaded
from tests.posting import befriend, block, comment, create_post, member, walk

EXPORTS = f"{API}/users/me/exports"
SECTIONS = ("posts", "comments", "likes", "friends", "blocks", "notifications", "media")


async def request_export(client: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    response = await client.post(EXPORTS, headers=account.headers)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["location"] == f"https://kith.example{EXPORTS}/{body['id']}"
    return body


async def ready_export(client: httpx.AsyncClient, resources: Resources, account: Account) -> dict[str, Any]:
    created = await request_export(client, account)
    assert created["status"] == "queued"
    await resources.jobs.wait_idle()
    response = await client.get(f"{EXPORTS}/{created['id']}", headers=account.headers)
    assert response.status_code == 200, response.text
    export: dict[str, Any] = response.json()
    assert export["status"] == "ready", export
    return export


async def download(client: httpx.AsyncClient, account: Account, export_id: str) -> zipfile.ZipFile:
    response = await client.get(f"{EXPORTS}/{export_id}/archive", headers=account.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-disposition"].startswith("attachment;")
    return zipfile.ZipFile(io.BytesIO(response.content))


def section(archive: zipfile.ZipFile, name: str) -> Any:
    return json.loads(archive.read(f"{name}.json"))


def stages(statuses: list[str]) -> list[str]:
    """The statuses in the order they came, each once."""
    return [status for number, status in enumerate(statuses) if number == 0 or statuses[number - 1] != status]


async def set_export(resources: Resources, export_id: str, **values: Any) -> None:
    async with unit_of_work(resources) as session:
        await session.execute(update(Export).where(Export.id == export_id).values(**values))


async def test_the_archive_equals_what_the_api_answers(
    client: httpx.AsyncClient, resources: Resources, mailbox: Mailbox
) -> None:
    alice, bob, carol, dave = [await member(resources, name) for name in ("alice", "bob", "carol", "dave")]
    await befriend(resources, alice, bob)
    await befriend(resources, alice, carol)
    await block(resources, alice, dave)
    # Images: an avatar, and two on a post.
    avatar = await uploaded(client, alice, png_bytes((12, 9)), filename="a.png", content_type="image/png")
    assert (
        await client.patch(f"{API}/users/me", json={"avatar_media_id": avatar["id"]}, headers=alice.headers)
    ).status_code == 200
    first = await uploaded(client, alice, png_bytes((40, 30)), filename="b.png", content_type="image/png")
    second = await uploaded(client, alice, gif_bytes(), filename="c.gif", content_type="image/gif")
    pictured = await create_post(client, alice, content="pictures", media_ids=[first["id"], second["id"]])
    private = await create_post(client, alice, content="just me", visibility="private")
    public = await create_post(client, alice, content='hello <world> & "all"', visibility="public")
    bobs = await create_post(client, bob, content="bob's")
    # Alice likes and comments; Bob and Carol like and comment on hers (notifications).
    assert (await client.post(f"{API}/posts/{bobs['id']}/like", headers=alice.headers)).status_code == 201
    assert (await client.post(f"{API}/posts/{public['id']}/like", headers=alice.headers)).status_code == 201
    mine = await comment(client, alice, bobs["id"], "nice one")
    await comment(client, alice, private["id"], "a note to self")
    await comment(client, bob, pictured["id"], "lovely")
    assert (await client.post(f"{API}/posts/{pictured['id']}/like", headers=carol.headers)).status_code == 201
    assert (await client.post(f"{API}/posts/{pictured['id']}/like", headers=bob.headers)).status_code == 201

    export = await ready_export(client, resources, alice)
    assert export["progress"] == 100
    assert export["error"] is None
    archive = await download(client, alice, export["id"])
    assert export["size"] == len(archive.fp.getvalue())  # type: ignore[union-attr]

    me = (await client.get(f"{API}/users/me", headers=alice.headers)).json()
    assert json.loads(archive.read("profile.json")) == me
    assert section(archive, "posts") == await walk(client, alice, f"/users/{alice.id}/posts", 100)
    assert len(section(archive, "posts")) == 3
    assert section(archive, "friends") == await walk(client, alice, f"/users/{alice.id}/friends", 100)
    assert section(archive, "blocks") == await walk(client, alice, "/blocks", 100)
    assert section(archive, "notifications") == await walk(client, alice, "/notifications", 100)
    assert len(section(archive, "notifications")) == 3

    comments = section(archive, "comments")
    assert [item["content"] for item in comments] == ["nice one", "a note to self"]
    for item in comments:
        under_post = await walk(client, alice, f"/posts/{item['post_id']}/comments", 100)
        assert item in under_post
    assert comments[0]["id"] == mine["id"]

    likes = section(archive, "likes")
    assert {item["post_id"] for item in likes} == {bobs["id"], public["id"]}
    for item in likes:
        likers = await walk(client, alice, f"/posts/{item['post_id']}/likes", 100)
        assert [liker["liked_at"] for liker in likers if liker["id"] == alice.id] == [item["liked_at"]]

    # Every upload, each file byte for byte as /media/{key} serves it.
    uploads = section(archive, "media")
    assert {item["id"] for item in uploads} == {avatar["id"], first["id"], second["id"]}
    for item in uploads:
        served = await client.get(item["url"].removeprefix("https://kith.example"))
        assert served.status_code == 200
        key = item["url"].rsplit("/", 1)[1]
        assert archive.read(f"media/{key}") == served.content
    names = set(archive.namelist())
    assert names == {
        "profile.json",
        "manifest.json",
        "index.html",
        *(f"{name}.json" for name in SECTIONS),
        *(f"media/{item['url'].rsplit('/', 1)[1]}" for item in uploads),
    }
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["counts"] == {name: len(section(archive, name)) for name in SECTIONS}
    assert manifest["user_id"] == alice.id
    index = archive.read("index.html").decode()
    assert "Kith export of Alice (@alice)" in index
    assert 'href="posts.json"' in index
    assert "<world>" not in index  # nothing of the user's text is taken as markup
    # The e-mail points at the settings page, where the owner (signed in) downloads it.
    await resources.jobs.wait_idle()
    [message] = [m for m in mailbox.to("alice@example.com") if m["Subject"] == "Your Kith archive is ready"]
    assert f"https://kith.example/settings?export={export['id']}" in Mailbox.text_of(message)


async def test_progress_reaches_the_owners_live_streams(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await member(resources, "alice")
    for number in range(3):
        await create_post(client, alice, content=f"post {number}")
    subscription = await resources.realtime.subscribe(alice.id)
    try:
        export = await ready_export(client, resources, alice)
        events = []
        while not subscription.queue.empty():
            events.append(subscription.queue.get_nowait())
    finally:
        await resources.realtime.unsubscribe(subscription)
    updates = [event["data"] for event in events if event["event"] == "export"]
    # (A slow machine may add a progress step while running.)
    assert stages([update["status"] for update in updates]) == ["queued", "running", "ready"]
    assert all(update["progress"] < 100 for update in updates[:-1])
    assert {update["id"] for update in updates} == {export["id"]}
    assert updates[-1] == export


async def test_a_download_link_works_once_for_a_while_and_only_the_latest(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await member(resources, "alice")
    await create_post(client, alice, content="mine")
    export = await ready_export(client, resources, alice)
    links = f"{EXPORTS}/{export['id']}/links"

    response = await client.post(links, headers=alice.headers)
    assert response.status_code == 201, response.text
    link = response.json()
    assert link["url"].startswith(f"https://kith.example{API}/export-downloads/")
    path = link["url"].removeprefix("https://kith.example")
    first = await client.get(path)  # no credentials: a browser's download
    assert first.status_code == 200
    assert json.loads(zipfile.ZipFile(io.BytesIO(first.content)).read("profile.json"))["id"] == alice.id
    # Spent: the same link again is refused.
    assert_problem(await client.get(path), 410, "download_link_invalid")

    # A newer link replaces an unused older one.
    older = (
        (await client.post(links, headers=alice.headers)).json()["url"].removeprefix("https://kith.example")
    )
    newer = (
        (await client.post(links, headers=alice.headers)).json()["url"].removeprefix("https://kith.example")
    )
    assert_problem(await client.get(older), 410, "download_link_invalid")
    # An expired link is refused.
    await set_export(resources, export["id"], link_expires_at=resources.clock.now() - timedelta(seconds=1))
    assert_problem(await client.get(newer), 410, "download_link_invalid")
    assert_problem(await client.get(f"{API}/export-downloads/not-a-token"), 410, "download_link_invalid")


async def test_another_users_export_is_not_found(client: httpx.AsyncClient, resources: Resources) -> None:
    alice, mallory = await member(resources, "alice"), await member(resources, "mallory")
    export = await ready_export(client, resources, alice)
    for method, suffix in (("GET", ""), ("GET", "/archive"), ("POST", "/links")):
        response = await client.request(method, f"{EXPORTS}/{export['id']}{suffix}", headers=mallory.headers)
        assert_problem(response, 404, "export_not_found")
    assert (await client.get(EXPORTS, headers=mallory.headers)).json() == {"items": [], "next_cursor": None}
    assert (await client.get(EXPORTS, headers=alice.headers)).json()["items"] == [export]
    assert (await client.get(f"{EXPORTS}/{export['id']}")).status_code == 401


async def test_expired_archives_are_refused_and_deleted(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    alice = await member(resources, "alice")
    export = await ready_export(client, resources, alice)
    expires_at = resources.clock.now() + timedelta(days=7)
    assert abs(_parse(export["expires_at"]) - expires_at) < timedelta(minutes=1)
    link = (await client.post(f"{EXPORTS}/{export['id']}/links", headers=alice.headers)).json()
    assert archive_path(settings, export["id"]).is_file()

    await set_export(resources, export["id"], expires_at=resources.clock.now() - timedelta(seconds=1))
    # Past its expiry it is refused at once, before the sweep comes by.
    assert_problem(
        await client.get(f"{EXPORTS}/{export['id']}/archive", headers=alice.headers), 410, "export_expired"
    )
    assert_problem(
        await client.get(link["url"].removeprefix("https://kith.example")), 410, "download_link_invalid"
    )
    assert await remove_expired_exports(resources) == 1
    assert not archive_path(settings, export["id"]).exists()
    shown = (await client.get(f"{EXPORTS}/{export['id']}", headers=alice.headers)).json()
    assert shown["status"] == "expired"
    assert_problem(
        await client.get(f"{EXPORTS}/{export['id']}/archive", headers=alice.headers), 410, "export_expired"
    )
    assert_problem(
        await client.post(f"{EXPORTS}/{export['id']}/links", headers=alice.headers), 410, "export_expired"
    )


async def test_one_export_a_day(client: httpx.AsyncClient, resources: Resources) -> None:
    alice = await member(resources, "alice")
    export = await ready_export(client, resources, alice)
    response = await client.post(EXPORTS, headers=alice.headers)
    assert_problem(response, 429, "export_too_soon")
    assert 86_000 < int(response.headers["retry-after"]) <= 86_400
    # A day later it may ask again.
    await set_export(
        resources, export["id"], created_at=resources.clock.now() - timedelta(hours=24, seconds=1)
    )
    again = await request_export(client, alice)
    await resources.jobs.wait_idle()
    # A failed export does not count.
    await set_export(resources, again["id"], status=ExportStatus.failed, error="build_failed")
    await request_export(client, alice)
    await resources.jobs.wait_idle()


async def test_two_requests_at_once_make_one_export(client: httpx.AsyncClient, resources: Resources) -> None:
    alice = await member(resources, "alice")
    answers = await asyncio.gather(*(client.post(EXPORTS, headers=alice.headers) for _ in range(4)))
    assert sorted(response.status_code for response in answers) == [202, 429, 429, 429]
    await resources.jobs.wait_idle()
    assert len((await client.get(EXPORTS, headers=alice.headers)).json()["items"]) == 1


async def test_a_queued_export_is_not_downloadable_yet(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await member(resources, "alice")
    async with unit_of_work(resources) as session:
        export = Export(user_id=alice.id, status=ExportStatus.running, progress=40)
        session.add(export)
    response = await client.get(f"{EXPORTS}/{export.id}/archive", headers=alice.headers)
    assert_problem(response, 409, "export_not_ready")
    assert_problem(
        await client.post(f"{EXPORTS}/{export.id}/links", headers=alice.headers), 409, "export_not_ready"
    )
    shown = (await client.get(f"{EXPORTS}/{export.id}", headers=alice.headers)).json()
    assert (shown["status"], shown["progress"], shown["size"], shown["expires_at"]) == (
        "running",
        40,
        None,
        None,
    )


async def test_an_archive_over_the_size_limit_fails_and_leaves_no_file(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    alice = await member(resources, "alice")
    for number in range(20):
        await create_post(client, alice, content=f"post number {number} " + "words " * 200)
    settings.export_max_bytes = 2000
    created = await request_export(client, alice)
    await resources.jobs.wait_idle()
    shown = (await client.get(f"{EXPORTS}/{created['id']}", headers=alice.headers)).json()
    assert (shown["status"], shown["error"]) == ("failed", "too_large")
    assert not archive_path(settings, created["id"]).exists()
    assert not partial_path(settings, created["id"]).exists()
    # Failed: it does not count against the day's export.
    settings.export_max_bytes = 10**9
    await ready_export(client, resources, alice)


async def test_deleting_the_account_deletes_its_archives(
    client: httpx.AsyncClient, resources: Resources, settings: Settings
) -> None:
    alice = await member(resources, "alice")
    export = await ready_export(client, resources, alice)
    path = archive_path(settings, export["id"])
    assert path.is_file()
    stray = settings.export_root / "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b.zip"
    stray.write_bytes(b"left by a build whose account was deleted")
    response = await client.request(
        "DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=alice.headers
    )
    assert response.status_code == 204, response.text
    assert not path.exists()
    # A file no export holds is swept.
    await remove_expired_exports(resources)
    assert not stray.exists()


async def test_stale_exports_fail_so_the_owner_can_ask_again(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alice = await member(resources, "alice")
    async with unit_of_work(resources) as session:
        export = Export(
            user_id=alice.id,
            status=ExportStatus.running,
            progress=10,
            created_at=resources.clock.now() - timedelta(hours=7),
        )
        session.add(export)
    assert await remove_expired_exports(resources) == 1
    shown = (await client.get(f"{EXPORTS}/{export.id}", headers=alice.headers)).json()
    assert (shown["status"], shown["error"]) == ("failed", "interrupted")
    await request_export(client, alice)
    await resources.jobs.wait_idle()


async def test_an_api_key_cannot_ask_for_an_export(client: httpx.AsyncClient, resources: Resources) -> None:
    alice = await member(resources, "alice")
    created = await client.post(
        f"{API}/users/me/api-keys",
        json={"name": "script", "scopes": ["read", "write"]},
        headers=alice.headers,
    )
    key = created.json()["key"]
    assert_problem(await client.post(EXPORTS, headers={"X-API-Key": key}), 403, "api_key_not_allowed")


def _parse(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


needs_redis = pytest.mark.skipif(not redis_available(), reason="Redis is not reachable")


@needs_redis
async def test_with_redis_a_worker_builds_it_and_the_api_process_hears_the_progress(
    settings: Settings, mailbox: Mailbox
) -> None:
    redis_settings = settings.model_copy(
        update={"redis_url": REDIS_URL, "job_queue": f"kith:test:{uuid.uuid4().hex}"}
    )
    application = create_app(redis_settings)
    async with application.router.lifespan_context(application):
        api_resources: Resources = application.state.resources
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            alice = await member(api_resources, "alice")
            await create_post(client, alice, content="kept")
            subscription = await api_resources.realtime.subscribe(alice.id)
            created = await request_export(client, alice)
            # Nothing runs in the API process: the job waits in the Redis stream.
            await asyncio.sleep(0.3)
            shown = (await client.get(f"{EXPORTS}/{created['id']}", headers=alice.headers)).json()
            assert shown["status"] == "queued"
            worker_resources = await open_resources(redis_settings)
            worker = asyncio.create_task(worker_resources.jobs.consume(10))
            try:
                statuses: list[str] = []
                async with asyncio.timeout(20):
                    while "ready" not in statuses:
                        event = await subscription.queue.get()
                        if event["event"] == "export":
                            statuses.append(event["data"]["status"])
                    # The e-mail's job, queued as the export became ready, runs in the worker too.
                    for _ in range(400):
                        if mailbox.to("alice@example.com"):
                            break
                        await asyncio.sleep(0.05)
            finally:
                worker.cancel()
                await asyncio.gather(worker, return_exceptions=True)
                await worker_resources.close()
                await api_resources.realtime.unsubscribe(subscription)
                assert api_resources.redis is not None
                await api_resources.redis.delete(redis_settings.job_queue)
            # queued was published by the API process itself; the rest came through Redis.
            assert stages(statuses) == ["queued", "running", "ready"]
            archive = await download(client, alice, created["id"])
            [post] = section(archive, "posts")
            assert post["content"] == "kept"
    assert [m["Subject"] for m in mailbox.to("alice@example.com")] == ["Your Kith archive is ready"]
