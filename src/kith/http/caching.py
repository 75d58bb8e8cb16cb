"""Conditional GETs: an `ETag` on every JSON resource and list, and 304 on `If-None-Match`.

The edge (`kith.http.middleware`) serves every route: it holds a successful JSON answer to
a GET under the API prefix (one body, no copy), tags it with a hash of its body, and answers 304
without a body when the client already holds that version. The tag is strong (equal
bodies give equal tags), so a changed resource always gets a new tag. Media files are
served with their own tag and are passed through untouched, as is every non-200 or
non-JSON answer.
"""

from __future__ import annotations

import hashlib

# The answer differs by caller: a shared cache must key it by the credentials.
VARY_ON = ("Authorization", "X-API-Key")
# Headers a 304 keeps (RFC 9110 §15.4.5); the body's own headers go.
DROPPED_ON_304 = (b"content-length", b"content-type", b"content-encoding")


def etag_of(body: bytes) -> str:
    """A strong entity tag: a quoted hash of the exact bytes sent."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def if_none_match_hits(header: str | None, etag: str) -> bool:
    """Whether `If-None-Match` names `etag`: a list of tags, or `*` (weak comparison)."""
    if header is None:
        return False
    opaque = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == opaque:
            return True
    return False


def add_vary(headers: list[tuple[bytes, bytes]], names: tuple[str, ...]) -> None:
    """Add `names` to a response's raw headers' `Vary` (one header, each name once)."""
    if not any(name.lower() == b"vary" for name, _ in headers):
        headers.append((b"vary", ", ".join(names).encode("latin-1")))
        return
    present: list[str] = []
    kept = []
    for name, value in headers:
        if name.lower() == b"vary":
            present += [item.strip() for item in value.decode("latin-1").split(",") if item.strip()]
        else:
            kept.append((name, value))
    lowered = {item.lower() for item in present}
    present += [name for name in names if name.lower() not in lowered]
    kept.append((b"vary", ", ".join(present).encode("latin-1")))
    headers[:] = kept
