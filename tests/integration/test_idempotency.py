"""Idempotency (docs/api.md#conventions): `Idempotency-Key` on create endpoints."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import func, select, update

from kith.db.models import IdempotencyKey, Media, Post, User
from kith.http.idempotency import forget_old_idempotency_keys, request_hash
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work
from tests.helpers import API, PASSWORD, assert_problem, field_errors
from tests.posting import member


async def count(resources: Resources, model: Any) -> int:
    async with unit_of_work(resources, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def post_with_key(
    client: httpx.AsyncClient, headers: dict[str, str], key: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(f"{API}/posts", json=body, headers={**headers, "Idempotency-Key": key})


async def test_a_repeat_replays_the_first_answer_and_creates_nothing(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    first = await post_with_key(client, ada.headers, "key-1", {"content": "hello"})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers

    again = await post_with_key(client, ada.headers, "key-1", {"content": "hello"})
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["content-type"] == "application/json"
    assert await count(resources, Post) == 1

    # The stored body is what the client got, and it is the real resource.
    fetched = await client.get(first.headers["location"], headers=ada.headers)
    assert fetched.json()["id"] == first.json()["id"]


async def test_requests_without_a_key_are_not_deduplicated(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    for _ in range(2):
        response = await client.post(f"{API}/posts", json={"content": "hello"}, headers=ada.headers)
        assert response.status_code == 201
    assert await count(resources, Post) == 2


async def test_the_same_key_with_another_body_is_422(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    assert (await post_with_key(client, ada.headers, "key-1", {"content": "hello"})).status_code == 201
    reused = await post_with_key(client, ada.headers, "key-1", {"content": "goodbye"})
    assert_problem(reused, 422, "idempotency_key_reused")
    assert await count(resources, Post) == 1

    # Equal JSON written differently is the same body.
    spaced = await client.post(
        f"{API}/posts",
        content=b'{ "content" : "hello" }',
        headers={**ada.headers, "Idempotency-Key": "key-1", "Content-Type": "application/json"},
    )
    assert spaced.status_code == 201
    assert spaced.headers["idempotent-replayed"] == "true"


async def test_the_same_key_on_another_path_is_422(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    posts = [
        (await client.post(f"{API}/posts", json={"content": n}, headers=ada.headers)).json() for n in "ab"
    ]
    headers = {**ada.headers, "Idempotency-Key": "comment-1"}
    first = await client.post(
        f"{API}/posts/{posts[0]['id']}/comments", json={"content": "hi"}, headers=headers
    )
    assert first.status_code == 201
    other = await client.post(
        f"{API}/posts/{posts[1]['id']}/comments", json={"content": "hi"}, headers=headers
    )
    assert_problem(other, 422, "idempotency_key_reused")


async def test_keys_are_per_caller(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    bob = await member(resources, "bob")
    first = await post_with_key(client, ada.headers, "shared", {"content": "hello"})
    second = await post_with_key(client, bob.headers, "shared", {"content": "hello"})
    assert first.status_code == second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    assert second.json()["author"]["id"] == bob.id
    assert await count(resources, Post) == 2


async def test_key_length(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    too_long = await post_with_key(client, ada.headers, "k" * 256, {"content": "hello"})
    assert_problem(too_long, 422, "validation_error")
    assert field_errors(too_long)
    assert (await post_with_key(client, ada.headers, "k" * 255, {"content": "hello"})).status_code == 201
    assert await count(resources, Post) == 1


async def test_a_failed_request_frees_its_key(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    invalid = await post_with_key(client, ada.headers, "key-1", {"content": ""})
    assert_problem(invalid, 422, "validation_error")
    assert await count(resources, IdempotencyKey) == 0
    fixed = await post_with_key(client, ada.headers, "key-1", {"content": "hello"})
    assert fixed.status_code == 201
    assert "idempotent-replayed" not in fixed.headers


async def insert_mark(resources: Resources, owner: str, key: str, fingerprint: str) -> None:
    """A mark in progress, as a worker that crashed mid-request leaves it."""
    now = resources.clock.now()
    async with unit_of_work(resources) as session:
        session.add(
            IdempotencyKey(
                owner=owner,
                key=key,
                request_hash=fingerprint,
                state="in_progress",
                claim="crashed",
                created_at=now,
                updated_at=now,
            )
        )


async def test_in_flight_is_409_and_a_stale_mark_expires_after_60_seconds(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    body = {"content": "hello"}
    fingerprint = request_hash("POST", f"{API}/posts", b'{"content":"hello"}')
    resources.clock.freeze()  # 59 s must mean 59 s, however slowly the requests run
    await insert_mark(resources, ada.id, "key-1", fingerprint)

    busy = await post_with_key(client, ada.headers, "key-1", body)
    assert_problem(busy, 409, "idempotency_in_progress")
    resources.clock.advance(seconds=59)
    assert_problem(await post_with_key(client, ada.headers, "key-1", body), 409, "idempotency_in_progress")
    assert await count(resources, Post) == 0

    resources.clock.advance(seconds=2)
    taken_over = await post_with_key(client, ada.headers, "key-1", body)
    assert taken_over.status_code == 201, taken_over.text
    replay = await post_with_key(client, ada.headers, "key-1", body)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == taken_over.content
    assert await count(resources, Post) == 1


async def test_a_slow_attempt_that_lost_its_mark_rolls_back(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    seen: list[int] = []

    # Between the claim and the write, another attempt takes the key over.
    from sqlalchemy import event

    def steal(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO POSTS") and not seen:
            seen.append(1)
            conn.exec_driver_sql("UPDATE idempotency_keys SET claim = 'other'")

    event.listen(resources.engine.sync_engine, "before_cursor_execute", steal)
    try:
        lost = await post_with_key(client, ada.headers, "key-1", {"content": "hello"})
    finally:
        event.remove(resources.engine.sync_engine, "before_cursor_execute", steal)
    assert_problem(lost, 409, "idempotency_in_progress")
    assert await count(resources, Post) == 0


async def test_keys_are_forgotten_after_24_hours(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    assert (await post_with_key(client, ada.headers, "key-1", {"content": "hello"})).status_code == 201
    resources.clock.advance(hours=23)
    assert await forget_old_idempotency_keys(resources) == 0
    assert await count(resources, IdempotencyKey) == 1

    resources.clock.advance(hours=1, seconds=1)
    assert await forget_old_idempotency_keys(resources) == 1
    assert await count(resources, IdempotencyKey) == 0
    fresh = await post_with_key(client, ada.headers, "key-1", {"content": "another day"})
    assert fresh.status_code == 201
    assert "idempotent-replayed" not in fresh.headers


async def test_an_expired_key_not_yet_swept_is_free_again(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    assert (await post_with_key(client, ada.headers, "key-1", {"content": "hello"})).status_code == 201
    resources.clock.advance(hours=24, seconds=1)
    again = await post_with_key(client, ada.headers, "key-1", {"content": "hello"})
    assert again.status_code == 201
    assert "idempotent-replayed" not in again.headers
    assert await count(resources, Post) == 2


async def test_two_concurrent_identical_requests_create_one_post(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    for round_ in range(3):
        key = f"race-{round_}"
        answers = await asyncio.gather(
            *(post_with_key(client, ada.headers, key, {"content": f"race {round_}"}) for _ in range(2))
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses in ([201, 201], [201, 409]), [answer.text for answer in answers]
        created = [answer for answer in answers if answer.status_code == 201]
        if len(created) == 2:
            assert created[0].content == created[1].content
            assert sum(answer.headers.get("idempotent-replayed") == "true" for answer in created) == 1
        else:
            assert_problem(next(a for a in answers if a.status_code == 409), 409, "idempotency_in_progress")
        assert await count(resources, Post) == round_ + 1


async def test_anonymous_register_is_keyed_by_client_ip(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    body = {"username": "ada", "email": "ada@example.com", "password": PASSWORD}
    headers = {"Idempotency-Key": "signup"}
    first = await client.post(f"{API}/auth/register", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post(f"{API}/auth/register", json=body, headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await count(resources, User) == 1
    async with unit_of_work(resources, write=False) as session:
        owners = list(await session.scalars(select(IdempotencyKey.owner)))
    assert owners == ["ip:127.0.0.1"]


async def test_every_create_endpoint_replays(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    bob = await member(resources, "bob")
    cat = await member(resources, "cat")
    post = (
        await client.post(f"{API}/posts", json={"content": "p", "visibility": "public"}, headers=bob.headers)
    ).json()
    creates = [
        (f"{API}/posts/{post['id']}/comments", {"content": "nice"}),
        (f"{API}/friend-requests", {"receiver_id": bob.id}),
        (f"{API}/blocks", {"user_id": cat.id}),
        (f"{API}/reports", {"target_type": "post", "target_id": post["id"], "reason": "spam"}),
        (f"{API}/users/me/api-keys", {"name": "ci", "scopes": ["read"]}),
    ]
    for number, (url, body) in enumerate(creates):
        headers = {**ada.headers, "Idempotency-Key": f"create-{number}"}
        first = await client.post(url, json=body, headers=headers)
        assert first.status_code == 201, (url, first.text)
        again = await client.post(url, json=body, headers=headers)
        assert (again.status_code, again.headers.get("idempotent-replayed")) == (201, "true"), (
            url,
            again.text,
        )
        # A new key's secret is never stored: its replay says so with a null `key`.
        expected = {**first.json(), "key": None} if url.endswith("/api-keys") else first.json()
        assert again.json() == expected


async def test_a_new_api_key_secret_is_never_stored_for_replay(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    headers = {**ada.headers, "Idempotency-Key": "make-a-key"}
    body = {"name": "deploy", "scopes": ["read"]}
    first = await client.post(f"{API}/users/me/api-keys", json=body, headers=headers)
    secret = first.json()["key"]
    assert secret.startswith("kith_")
    async with unit_of_work(resources, write=False) as session:
        stored = await session.scalar(select(IdempotencyKey.response_body))
    assert stored is not None and secret not in stored and secret[:12] in stored
    again = await client.post(f"{API}/users/me/api-keys", json=body, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["key"] is None
    # The one key made still works; the replay made no second one.
    assert (await client.get(f"{API}/users/me", headers={"X-API-Key": secret})).status_code == 200
    keys = await client.get(f"{API}/users/me/api-keys", headers=ada.headers)
    assert [key["id"] for key in keys.json()["items"]] == [first.json()["id"]]


async def test_the_mark_commits_with_the_write(client: httpx.AsyncClient, resources: Resources) -> None:
    ada = await member(resources, "ada")
    response = await post_with_key(client, ada.headers, "key-1", {"content": "hello"})
    async with unit_of_work(resources, write=False) as session:
        mark = await session.scalar(select(IdempotencyKey))
    assert mark is not None
    assert (mark.owner, mark.key, mark.state, mark.response_status) == (ada.id, "key-1", "completed", 201)
    assert mark.response_body is not None and mark.response_body.encode() == response.content
    # A mark older than the in-progress timeout is still replayed once completed.
    async with unit_of_work(resources) as session:
        await session.execute(
            update(IdempotencyKey).values(updated_at=resources.clock.now() - timedelta(hours=1))
        )
    replay = await post_with_key(client, ada.headers, "key-1", {"content": "hello"})
    assert replay.headers["idempotent-replayed"] == "true"


async def test_openapi_documents_the_header(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    for path in (f"{API}/posts", f"{API}/auth/register", f"{API}/friend-requests", f"{API}/media"):
        operation = schema["paths"][path]["post"]
        assert "Idempotency-Key" in [param["name"] for param in operation["parameters"]]
        assert "409" in operation["responses"]
        assert not any(param["name"].startswith("kith_") for param in operation["parameters"])


# --- uploads: the key is claimed before the body streams in -------------------------------


def png(colour: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(buffer, format="PNG")
    return buffer.getvalue()


async def upload_with_key(
    client: httpx.AsyncClient, headers: dict[str, str], key: str, content: bytes
) -> httpx.Response:
    # httpx picks a new random multipart boundary for every request, as real clients do.
    files = {"file": ("photo.png", content, "image/png")}
    return await client.post(f"{API}/media", files=files, headers={**headers, "Idempotency-Key": key})


async def test_an_upload_retried_with_its_key_stores_one_file(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    first = await upload_with_key(client, ada.headers, "photo-1", png())
    assert first.status_code == 201, first.text
    again = await upload_with_key(client, ada.headers, "photo-1", png())
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert await count(resources, Media) == 1
    stored = [path for path in resources.settings.media_root.rglob("*") if path.is_file()]
    assert len(stored) == 1  # the retry's file was not kept either
    # Another file under the same key is refused, and stores nothing.
    other = await upload_with_key(client, ada.headers, "photo-1", png((10, 200, 10)))
    assert_problem(other, 422, "idempotency_key_reused")
    assert await count(resources, Media) == 1


async def test_an_upload_in_flight_is_409_and_a_failed_one_frees_its_key(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    await insert_mark(resources, ada.id, "photo-1", "")
    assert_problem(
        await upload_with_key(client, ada.headers, "photo-1", png()), 409, "idempotency_in_progress"
    )
    assert await count(resources, Media) == 0

    refused = await upload_with_key(client, ada.headers, "photo-2", b"not an image")
    assert_problem(refused, 415)
    fixed = await upload_with_key(client, ada.headers, "photo-2", png())
    assert fixed.status_code == 201
    assert "idempotent-replayed" not in fixed.headers


async def test_concurrent_uploads_with_one_key_store_one_file(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    ada = await member(resources, "ada")
    answers = await asyncio.gather(*(upload_with_key(client, ada.headers, "same", png()) for _ in range(3)))
    assert sorted(answer.status_code for answer in answers)[0] == 201
    assert {answer.status_code for answer in answers} <= {201, 409}
    assert await count(resources, Media) == 1
