"""Schemathesis hooks for fuzzing Kith: loaded by `schemathesis.toml` and by the in-process tests.

Everything here either tells the generator what a documented `format` means, or keeps
the run itself alive. None of it hides a response from a check:

- `format: cursor` is an opaque page cursor; the only valid ones are what `next_cursor`
  returns. Positive cases get real cursors (any position), negative ones still get junk.
- `format: password` follows the password policy (NIST SP 800-63B: not a common
  password), which a schema cannot spell out; `format: email` has no special-use
  domain (`.test`), as the field's description says. The coverage phase builds its
  boundary passwords from lengths alone; a common one keeps its length but not its text.
- Every request authenticates as a real account logged in through `POST /auth/login`:
  the admin for `/admin` and `/moderation`, a plain user everywhere else. A 401 (the run
  logged itself out) makes schemathesis log in again and retry.
- `Idempotency-Key` values are made unique per request: a key reused with a different
  body is 422 (docs/api.md#conventions), and the generator repeats short keys. Reuse has its own
  tests (`tests/integration/test_idempotency.py`).
- The admin never suspends, demotes or deletes the two accounts the run logs in with,
  which would end the run: such a request goes to an id that does not exist instead.
- Valid uploads are real JPEG, PNG, GIF or WebP images (the `file` part's declared
  encoding); the server judges files by their bytes.
- Headers that frame the HTTP message (`Content-Length`, `Transfer-Encoding`, `Host`...)
  are the HTTP client's, not the API's: the generator's extra headers never set them. A
  junk `Content-Length` is refused by the HTTP server itself (a plain-text 400 before any
  application code runs), which no operation of any API can describe.
- One false positive of the `use_after_free` check is dropped, and only that one (see
  `filter_failure`: "like" and "likes" are different resources).

Credentials come from the environment: `KITH_FUZZ_USER` and `KITH_FUZZ_ADMIN` as
`username:password:id`, set by whoever starts the run (`tests/fuzz/harness.py`).
"""

from __future__ import annotations

import io
import os
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import requests
import schemathesis
from hypothesis import strategies as st
from PIL import Image
from schemathesis.core.parameters import ParameterLocation
from schemathesis.openapi.checks import UseAfterFree
from schemathesis.python import asgi

from kith.auth.password_policy import refused_whoever_chooses_it
from kith.core.pagination import encode_cursor, encode_timed_position
from kith.http.idempotency import MAX_KEY_LENGTH
from tests.helpers import API

KithCase = schemathesis.Case[Any]
USER_ENV = "KITH_FUZZ_USER"
ADMIN_ENV = "KITH_FUZZ_ADMIN"
ADMIN_PREFIXES = (f"{API}/admin/", f"{API}/moderation/")
LOGIN_PATH = f"{API}/auth/login"


# --- formats --------------------------------------------------------------------------------


def _positions() -> st.SearchStrategy[str]:
    # A (time, id) position is valid on every list: lists keyed by id alone compare it as a
    # string, lists keyed by time (friends, blocks, likes) need both parts.
    ids = st.uuids().map(str)
    moments = st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    )
    return st.builds(encode_timed_position, moments, ids)


schemathesis.openapi.format("cursor", _positions().map(encode_cursor))


@st.composite
def _image(draw: st.DrawFn, image_format: str) -> bytes:
    size = (draw(st.integers(1, 48)), draw(st.integers(1, 48)))
    colour = draw(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=image_format)
    return buffer.getvalue()


# The upload's `file` part is one of these (its `encoding` in the OpenAPI description);
# valid cases send real images of them. Junk bytes still go out in invalid cases.
for _media_type, _format in {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}.items():
    schemathesis.openapi.media_type(_media_type, _image(_format))
# `format: email` as Kith reads it (see its description): no special-use domains, and no
# label with `--` as its third and fourth characters (reserved for Punycode, RFC 5891).
schemathesis.openapi.format(
    "email",
    st.emails(
        domains=st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\.(com|org|net|io)\Z").filter(
            lambda domain: domain[2:4] != "--"
        )
    ),
)
schemathesis.openapi.format(
    "password",
    st.text(min_size=8, max_size=128).filter(lambda text: not refused_whoever_chooses_it(text)),
)


# --- accounts -------------------------------------------------------------------------------


def _account(variable: str) -> tuple[str, str, str]:
    value = os.environ.get(variable)
    if not value:
        raise RuntimeError(f"{variable} is not set: start fuzzing runs through tests/fuzz/harness.py")
    username, password, user_id = value.split(":", 2)
    return username, password, user_id


def protected_ids() -> set[str]:
    return {_account(USER_ENV)[2], _account(ADMIN_ENV)[2]}


def role_for(path: str) -> str:
    return "admin" if path.startswith(ADMIN_PREFIXES) else "user"


def _role_key(case: KithCase, context: schemathesis.AuthContext) -> str:
    return role_for(context.operation.path)


def _login(case: KithCase, context: schemathesis.AuthContext) -> str:
    username, password, _ = _account(ADMIN_ENV if _role_key(case, context) == "admin" else USER_ENV)
    body = {"username": username, "password": password}
    response: requests.Response
    if context.app is not None:
        with asgi.get_client(context.app) as client:
            response = client.post(LOGIN_PATH, json=body)
    else:
        base = case.operation.base_url or ""
        response = requests.post(
            urljoin(base.rstrip("/") + "/", LOGIN_PATH.lstrip("/")), json=body, timeout=30
        )
    if response.status_code != 200:
        raise RuntimeError(f"login as {username} failed: {response.status_code} {response.text}")
    token: str = response.json()["access_token"]
    return token


@schemathesis.auth(refresh_interval=600, cache_by_key=_role_key, retry_on=[401])
class KithLogin:
    """A bearer token of the admin or of the plain user, by the operation's path."""

    def get(self, case: KithCase, context: schemathesis.AuthContext) -> str:
        return _login(case, context)

    def set(self, case: KithCase, data: str, context: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {data}"


# --- keeping the run alive ------------------------------------------------------------------


POLICY_FIELDS = {f"{API}/auth/register": "password", f"{API}/users/me/password": "new_password"}
POLICY_FIELDS[f"{API}/auth/password-reset/confirm"] = "new_password"


def _keep_to_the_password_policy(case: KithCase) -> None:
    """A common password of a valid length becomes an uncommon one of the same length.

    `format: password` says the policy applies, and the fuzzing phase generates by it,
    but the coverage phase builds its boundary values (`00000000`) from the lengths
    alone. The length, which is what the boundary tests, is kept.

    A body generated to break the schema is left alone: its password may be the very thing
    that breaks `format: password` (a common one), and made valid it would be accepted, which
    the negative-data check then reports as a schema-violating request accepted.
    """
    field = POLICY_FIELDS.get(case.operation.path)
    body = case.body
    value = body.get(field) if field is not None and isinstance(body, dict) else None
    if field is None or not isinstance(body, dict) or not isinstance(value, str):
        return
    body_info = case.meta.components.get(ParameterLocation.BODY) if case.meta is not None else None
    if body_info is not None and body_info.mode == schemathesis.GenerationMode.NEGATIVE:
        return
    if 8 <= len(value) <= 128 and refused_whoever_chooses_it(value):
        body[field] = "Kith-" + "z" * (len(value) - 5)


# Set by the HTTP client from the request itself (see the module's docstring).
FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "host", "connection", "te", "trailer", "upgrade", "expect"}
)


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: KithCase, kwargs: dict[str, Any]) -> None:
    """A fresh `Idempotency-Key` for each request; the run's own accounts stay out of admin hands."""
    operation = context.operation
    targets_admin_user = operation is not None and operation.path == f"{API}/admin/users/{{user_id}}"
    if targets_admin_user and case.path_parameters.get("user_id") in protected_ids():
        # Suspending or deleting an account the run logs in with would end the run.
        case.path_parameters["user_id"] = str(uuid.uuid4())
    _keep_to_the_password_policy(case)
    headers = case.headers
    for name in [name for name in headers if name.lower() in FRAMING_HEADERS]:
        del headers[name]
    for name, value in list(headers.items()):
        if name.lower() != "idempotency-key" or not isinstance(value, str) or len(value) > MAX_KEY_LENGTH:
            continue
        suffix = uuid.uuid4().hex
        if len(value) + len(suffix) <= MAX_KEY_LENGTH:
            headers[name] = value + suffix
        elif len(value) >= len(suffix):
            headers[name] = value[: len(value) - len(suffix)] + suffix


@schemathesis.hook
def filter_failure(
    context: schemathesis.HookContext, failure: Any, case: KithCase, response: schemathesis.Response
) -> bool:
    """Drop one false positive of `use_after_free`, and nothing else.

    `DELETE /posts/{id}/like` takes back the caller's like; `GET /posts/{id}/likes` lists
    who liked the post, which still exists, so it rightly answers 200. Schemathesis takes
    one for the other because it compares path segments without a trailing "s" ("like" =
    "likes"). The like itself has no URL to fetch; unliking is checked in
    tests/integration/test_likes_comments.py. Every other use-after-free, such as
    `GET /posts/{id}/likes` after `DELETE /posts/{id}`, is still reported.
    """
    if isinstance(failure, UseAfterFree):
        free, usage = failure.free.split(), failure.usage.split()
        unliked = free[0] == "DELETE" and free[1].endswith("/like")
        if unliked and usage[0] == "GET" and usage[1] == free[1] + "s":
            return False
    return True
