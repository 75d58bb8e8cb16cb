"""`Idempotency-Key` on create endpoints (docs/api.md#conventions), attached as a dependency.

A create route declares `idempotency: IdempotencyDep` as its first parameter, sends
`idempotency.replay` back when there is one, and returns `await idempotency.answer(session,
result)`.

A client that retries a create after a timeout sends the same `Idempotency-Key` and gets
the first answer again instead of a second resource. How it works:

1. Before the request's own transaction opens, a short transaction of its own claims the
   key for the caller (the user id, or `ip:<address>` when anonymous or unidentified): it inserts an
   in-progress mark, or finds the one there. A completed mark for the same request is
   replayed (`Idempotent-Replayed: true`); for another request (method, path or body
   differ) it is 422 `idempotency_key_reused`; a mark still in progress is 409
   `idempotency_in_progress`, unless it is older than 60 s, when a crashed worker left it
   and this attempt takes it over.
2. The handler runs in the request's transaction. Its result is serialised with the
   route's response model right there, and stored on the mark in the same transaction:
   the created rows and the recorded answer commit together, or neither does. The
   client receives exactly the stored bytes.
3. If the request fails, the mark is removed (own transaction) so a retry can run.

Marks are kept for 24 hours; a periodic task removes older ones.

Uploads (`POST /media`) stream their body, so it cannot be fingerprinted before the
claim without reading 10 MiB into memory. They claim with `DeferredAttempt`: the key is
claimed before the body is read; a completed mark found then is replayed only once the
streamed file's digest matches the one recorded with it (else 422); a new answer is
recorded with the file's digest. Being multipart, a retry's body differs in its
boundary, so the file's content, not the raw body, is what must be the same.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import anyio
from fastapi import Depends, Header, Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import TypeAdapter
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.errors import Conflict, Unprocessable
from kith.db.models import IdempotencyKey
from kith.http.caller import identify_caller
from kith.http.session import get_resources
from kith.runtime.periodic import periodic
from kith.runtime.resources import Resources
from kith.runtime.transaction import unit_of_work

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# A mark still in progress after this long was left by a crashed worker.
IN_PROGRESS_TIMEOUT = timedelta(seconds=60)
# How long a key is remembered.
RETENTION = timedelta(hours=24)
CLEANUP_INTERVAL_SECONDS = 3600.0
CLEANUP_BATCH = 1000
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
# Headers of the first answer that a replay does not repeat (the transport's own).
UNSTORED_HEADERS = frozenset({"content-length", "content-type", "set-cookie", "etag"})


@dataclass(frozen=True)
class Claim:
    """This request holds the key: the mark's id and this attempt's claim token."""

    mark_id: str
    token: str


@dataclass(frozen=True)
class Recorded:
    """A completed mark, found before this request's fingerprint was known."""

    fingerprint: str
    replay: Replay

    def answer(self, fingerprint: str) -> Response:
        """The first answer again if this request is the same one, else 422."""
        if fingerprint != self.fingerprint:
            raise _reused()
        return self.replay.response()


@dataclass(frozen=True)
class Replay:
    """The key was used for this very request before: its answer, to send again."""

    status: int
    headers: dict[str, str]
    body: bytes

    def response(self) -> Response:
        return Response(
            content=self.body,
            status_code=self.status,
            media_type="application/json",
            headers={**self.headers, "Idempotent-Replayed": "true"},
        )


# --- who is asking, and what -------------------------------------------------------------


def _canonical_body(body: bytes) -> bytes:
    # Equal JSON documents are the same request, however their keys are ordered or spaced.
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        return body


def request_hash(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), _canonical_body(body)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


# --- the mark ------------------------------------------------------------------------------


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"
    default_detail = "This Idempotency-Key was already used for a different request."
    description = "The Idempotency-Key was used before for another method, path or body."


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"
    default_detail = "A request with this Idempotency-Key is still being processed; retry shortly."
    description = "A request with this Idempotency-Key is still running; retry shortly."


def _reused() -> Unprocessable:
    return IdempotencyKeyReused()


def _in_progress() -> Conflict:
    return IdempotencyInProgress()


async def _claim(
    resources: Resources, owner: str, key: str, fingerprint: str | None
) -> Claim | Replay | Recorded:
    """Step 1, in its own committed transaction: take the key, or learn why not.

    Separate from the request's transaction because a concurrent retry must see the mark
    at once, and because on SQLite (one writer) it must not wait on the request's lock.
    """
    for _ in range(3):
        try:
            async with unit_of_work(resources) as session:
                return await _claim_in(session, resources, owner, key, fingerprint)
        except IntegrityError:
            # Another request inserted the same mark first; look again at what it left.
            continue
    raise _in_progress()


async def _claim_in(
    session: AsyncSession, resources: Resources, owner: str, key: str, fingerprint: str | None
) -> Claim | Replay | Recorded:
    """Take the key. `fingerprint` None: not known yet (uploads); it is recorded at completion."""
    now = resources.clock.now()
    token = secrets.token_hex(16)
    mark = await session.scalar(
        select(IdempotencyKey)
        .where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
        .with_for_update()
    )
    if mark is None:
        mark = IdempotencyKey(
            owner=owner,
            key=key,
            request_hash=fingerprint or "",
            state=IN_PROGRESS,
            claim=token,
            created_at=now,
            updated_at=now,
        )
        session.add(mark)
        await session.flush()
        return Claim(mark.id, token)
    if mark.created_at <= now - RETENTION:
        # Forgotten, but not yet swept away: the key is free again.
        mark.request_hash = fingerprint or ""
        mark.created_at = now
        mark.response_status = mark.response_headers = mark.response_body = None
    elif fingerprint is not None and mark.request_hash != fingerprint:
        raise _reused()
    elif mark.state == COMPLETED:
        assert mark.response_status is not None and mark.response_body is not None
        headers: dict[str, str] = json.loads(mark.response_headers or "{}")
        replay = Replay(mark.response_status, headers, mark.response_body.encode())
        return replay if fingerprint is not None else Recorded(mark.request_hash, replay)
    elif mark.updated_at > now - IN_PROGRESS_TIMEOUT:
        raise _in_progress()
    # A fresh claim, or a take-over of a mark a crashed worker left in progress.
    mark.state = IN_PROGRESS
    mark.claim = token
    mark.updated_at = now
    return Claim(mark.id, token)


async def _complete(
    session: AsyncSession,
    resources: Resources,
    claim: Claim,
    status: int,
    headers: dict[str, str],
    body: bytes,
    fingerprint: str | None,
) -> None:
    """Step 2, in the request's transaction: record the answer next to the write."""
    values: dict[str, Any] = {
        "state": COMPLETED,
        "response_status": status,
        "response_headers": json.dumps(headers),
        "response_body": body.decode(),
        "updated_at": resources.clock.now(),
    }
    if fingerprint is not None:
        values["request_hash"] = fingerprint
    result = await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == claim.mark_id, IdempotencyKey.claim == claim.token)
        .where(IdempotencyKey.state == IN_PROGRESS)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 1) != 1:
        # Another attempt took the key over (this one ran past the timeout): it wins,
        # and this request's writes roll back.
        raise _in_progress()


async def _release(resources: Resources, claim: Claim) -> None:
    """Remove this attempt's mark after a failure, so a retry can run.

    Its own transaction: the request's has rolled back (or never opened) by now.
    """
    with anyio.CancelScope(shield=True):
        async with unit_of_work(resources) as session:
            await session.execute(
                delete(IdempotencyKey).where(
                    IdempotencyKey.id == claim.mark_id,
                    IdempotencyKey.claim == claim.token,
                    IdempotencyKey.state == IN_PROGRESS,
                )
            )


# --- attaching it to routes ----------------------------------------------------------------


_KEY_HEADER = Header(
    alias=HEADER,
    min_length=1,
    max_length=MAX_KEY_LENGTH,
    description="Any string up to 255 characters, chosen by the client, unique per "
    "create it means. A retry with the same key and body returns the first answer "
    "(`Idempotent-Replayed: true`) and creates nothing.",
)


@asynccontextmanager
async def _attempt(
    request: Request, key: str | None, fingerprint: Callable[[], Awaitable[str | None]]
) -> AsyncIterator[Claim | Replay | Recorded | None]:
    """Claim the request's key, if it sent one; release the claim unless it completed."""
    if key is None:
        yield None
        return
    resources = get_resources(request)
    # Credentials are only identified here, not checked: the route's own authentication
    # does that (and answers 401, releasing the claim).
    owner = (await identify_caller(request.scope, resources)).owner
    outcome = await _claim(resources, owner, key, await fingerprint())
    if not isinstance(outcome, Claim):
        yield outcome
        return
    completed = False
    try:
        yield outcome
        completed = request.scope.get("state", {}).get("idempotency_completed", False)
    finally:
        if not completed:
            await _release(resources, outcome)


async def idempotency_attempt(
    request: Request, key: Annotated[str | None, _KEY_HEADER] = None
) -> AsyncIterator[Claim | Replay | Recorded | None]:
    """Claim the request's `Idempotency-Key`, if it sent one; release the claim on failure.

    Solved before the request's session opens (it is the route's first dependency), so
    its own short transaction never waits on the request's (SQLite has one writer).
    """

    async def whole_body() -> str:
        return request_hash(request.method, request.url.path, await request.body())

    async with _attempt(request, key, whole_body) as outcome:
        yield outcome


async def deferred_idempotency_attempt(
    request: Request, key: Annotated[str | None, _KEY_HEADER] = None
) -> AsyncIterator[Claim | Replay | Recorded | None]:
    """Like `idempotency_attempt`, for a body the route streams: nothing is read here."""

    async def not_yet() -> None:
        return None

    async with _attempt(request, key, not_yet) as outcome:
        yield outcome


Attempt = Annotated[Claim | Replay | Recorded | None, Depends(idempotency_attempt, scope="function")]
DeferredAttempt = Annotated[
    Claim | Replay | Recorded | None, Depends(deferred_idempotency_attempt, scope="function")
]


@functools.lru_cache(maxsize=64)
def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


async def _render(request: Request, result: Any) -> bytes:
    """The body the route sends for `result`: validated into its response model (ORM objects
    by their attributes) and dumped to JSON by field name, as FastAPI itself does."""
    route = request.scope.get("route")
    model = getattr(route, "response_model", None)
    if model is None:
        return json.dumps(jsonable_encoder(result), separators=(",", ":")).encode()
    adapter = _adapter(model)
    return adapter.dump_json(adapter.validate_python(result, from_attributes=True))


async def record_answer(
    request: Request,
    response: Response,
    session: AsyncSession,
    claim: Claim,
    result: Any,
    fingerprint: str | None = None,
    stored: Any = None,
) -> Response:
    """Record `result` as the key's answer in `session`'s transaction, and return exactly it.

    `fingerprint` completes a deferred claim with the request's now known fingerprint.
    `stored`, when given, is what is recorded (and replayed) instead of `result`: the same
    answer without what must not be kept, such as a secret shown once.
    """
    route = request.scope.get("route")
    status = response.status_code or getattr(route, "status_code", None) or 200
    body = await _render(request, result)
    kept = body if stored is None else await _render(request, stored)
    headers = {name: value for name, value in response.headers.items() if name not in UNSTORED_HEADERS}
    await _complete(session, get_resources(request), claim, status, headers, kept, fingerprint)
    request.scope.setdefault("state", {})["idempotency_completed"] = True
    answer = Response(content=body, status_code=status, media_type="application/json")
    answer.headers.update(headers)
    return answer


class Idempotency:
    """A create request's `Idempotency-Key`: the earlier answer to send again, or this
    request's claim, which `answer` completes in the request's transaction.

    Without a key both are no-ops: `replay` is None and `answer` returns the result as is.
    """

    def __init__(
        self, request: Request, response: Response, attempt: Claim | Replay | Recorded | None
    ) -> None:
        self._request = request
        self._response = response
        self._attempt = attempt

    @property
    def replay(self) -> Response | None:
        """The first answer again (`Idempotent-Replayed: true`) when this request is a retry."""
        return self._attempt.response() if isinstance(self._attempt, Replay) else None

    async def answer(self, session: AsyncSession, result: Any, *, stored: Any = None) -> Any:
        """Record `result` as the key's answer, in `session`'s transaction, and return it as
        the exact bytes recorded; without a key, `result` itself. With `stored`, a replay
        answers that instead (the same answer without a secret that must not be kept)."""
        if not isinstance(self._attempt, Claim):
            return result
        return await record_answer(
            self._request, self._response, session, self._attempt, result, stored=stored
        )


async def idempotency(request: Request, response: Response, attempt: Attempt) -> Idempotency:
    return Idempotency(request, response, attempt)


# The route's first parameter, so the key is claimed before the request's session opens.
IdempotencyDep = Annotated[Idempotency, Depends(idempotency)]


# --- house-keeping -------------------------------------------------------------------------


def _cleanup_interval(_settings: object) -> float:
    return CLEANUP_INTERVAL_SECONDS


@periodic(_cleanup_interval)
async def forget_old_idempotency_keys(resources: Resources) -> int:
    """Remove keys older than 24 hours, in batches. Returns how many were removed."""
    cutoff = resources.clock.now() - RETENTION
    removed = 0
    while True:
        async with unit_of_work(resources) as session:
            ids = list(
                await session.scalars(
                    select(IdempotencyKey.id).where(IdempotencyKey.created_at <= cutoff).limit(CLEANUP_BATCH)
                )
            )
            if ids:
                await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id.in_(ids)))
        removed += len(ids)
        if len(ids) < CLEANUP_BATCH:
            return removed
