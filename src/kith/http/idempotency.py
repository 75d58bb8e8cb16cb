"""`Idempotency-Key` on create endpoints (docs/api.md#conventions), attached with `@idempotent`.

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
import inspect
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, Header, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.routing import serialize_response
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kith.core.errors import Conflict, Unprocessable
from kith.db.models import IdempotencyKey
from kith.http.caller import identify_caller
from kith.http.session import SessionDep, get_resources
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

Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Any]])


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
    """Step 1, in its own committed transaction: take the key, or learn why not."""
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
    """Remove this attempt's mark after a failure, so a retry can run."""
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


async def _render(request: Request, result: Any) -> bytes:
    """The body FastAPI would send for `result`, serialised with the route's response model."""
    route = request.scope.get("route")
    field = getattr(route, "response_field", None)
    if field is None:
        return json.dumps(jsonable_encoder(result), separators=(",", ":")).encode()
    body: bytes = await serialize_response(
        field=field,
        response_content=result,
        by_alias=getattr(route, "response_model_by_alias", True),
        exclude_unset=getattr(route, "response_model_exclude_unset", False),
        exclude_defaults=getattr(route, "response_model_exclude_defaults", False),
        exclude_none=getattr(route, "response_model_exclude_none", False),
        dump_json=True,
    )
    return body


async def record_answer(
    request: Request,
    response: Response,
    session: AsyncSession,
    claim: Claim,
    result: Any,
    fingerprint: str | None = None,
) -> Response:
    """Record `result` as the key's answer in `session`'s transaction, and return exactly it.

    `fingerprint` completes a deferred claim with the request's now known fingerprint.
    """
    route = request.scope.get("route")
    status = response.status_code or getattr(route, "status_code", None) or 200
    body = await _render(request, result)
    headers = {name: value for name, value in response.headers.items() if name not in UNSTORED_HEADERS}
    await _complete(session, get_resources(request), claim, status, headers, body, fingerprint)
    request.scope.setdefault("state", {})["idempotency_completed"] = True
    answer = Response(content=body, status_code=status, media_type="application/json")
    answer.headers.update(headers)
    return answer


def _parameter_of(signature: inspect.Signature, kind: type) -> str | None:
    for param in signature.parameters.values():
        if isinstance(param.annotation, type) and issubclass(param.annotation, kind):
            return param.name
    return None


def idempotent(endpoint: Endpoint) -> Endpoint:
    """Make a create endpoint honour `Idempotency-Key`. Put it under the route decorator.

    The endpoint's result is serialised and recorded inside the request's transaction,
    and that exact body is what the client receives.
    """
    signature = inspect.signature(endpoint, eval_str=True)
    own = [param.replace(kind=inspect.Parameter.KEYWORD_ONLY) for param in signature.parameters.values()]
    keyword = inspect.Parameter.KEYWORD_ONLY
    # FastAPI hands the request and the response to one parameter each: reuse the
    # endpoint's own if it has them.
    request_name = _parameter_of(signature, Request) or "kith_idempotency_request"
    response_name = _parameter_of(signature, Response) or "kith_idempotency_response"
    parameters = [
        # First, so the key is claimed before the request's session opens.
        inspect.Parameter("kith_idempotency", keyword, annotation=Attempt),
        *own,
        *(
            inspect.Parameter(name, keyword, annotation=kind)
            for name, kind in ((request_name, Request), (response_name, Response))
            if name not in signature.parameters
        ),
        inspect.Parameter("kith_idempotency_session", keyword, annotation=SessionDep),
    ]

    def take(values: dict[str, Any], name: str) -> Any:
        return values[name] if name in signature.parameters else values.pop(name)

    @functools.wraps(endpoint)
    async def run(**values: Any) -> Any:
        attempt: Claim | Replay | Recorded | None = values.pop("kith_idempotency")
        session: AsyncSession = values.pop("kith_idempotency_session")
        request: Request = take(values, request_name)
        response: Response = take(values, response_name)
        if isinstance(attempt, Replay):
            return attempt.response()
        assert not isinstance(attempt, Recorded)  # only deferred attempts find these
        result = await endpoint(**values)
        if attempt is None:
            return result
        return await record_answer(request, response, session, attempt, result)

    del run.__wrapped__  # FastAPI must read the signature below, not the endpoint's
    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]


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
