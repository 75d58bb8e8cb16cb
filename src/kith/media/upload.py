"""The HTTP side of an upload: a multipart body streamed to a scratch file, counted as it comes.

Starlette's form parser would take the whole part before anyone could look at its
size. Here the body is read chunk by chunk from `request.stream()` and fed to
python-multipart's streaming parser; the `file` part goes to a scratch file, and the
upload is refused with 413 as soon as the count passes the cap, before the rest of
the body is read. A declared `Content-Length` that cannot fit is refused before a
single byte is read.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from kith.core.errors import (
    BadRequest,
    DomainError,
    MalformedMultipart,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from kith.media.storage import is_disk_full, storage_full

FILE_FIELD = "file"
# Room for the boundaries and part headers around the file in a multipart body.
MULTIPART_OVERHEAD = 16 * 1024
_CONTENT_DISPOSITION = b"content-disposition"


@dataclass(frozen=True)
class ReceivedFile:
    path: Path
    size: int
    # SHA-256 of the file's bytes (not of the multipart body, whose boundary is random).
    sha256: str


class UploadInterrupted(BadRequest):
    code = "upload_interrupted"
    default_detail = "The upload was interrupted."
    description = "The client stopped sending the upload before its end."


def too_large(max_bytes: int) -> PayloadTooLarge:
    # The rest of the body is never read: the connection cannot be reused.
    return PayloadTooLarge(f"The file is larger than {max_bytes:,} bytes.", headers={"Connection": "close"})


def malformed(message: str) -> Unprocessable:
    error = MalformedMultipart()
    error.errors = [{"field": "body", "message": message, "type": error.code}]
    return error


def missing_file() -> Unprocessable:
    error = Unprocessable("The request is not valid.")
    error.errors = [{"field": "body.file", "message": "Field required", "type": "missing"}]
    return error


@dataclass
class _PartReader:
    """python-multipart callbacks: keep the `file` part's bytes and count them."""

    max_bytes: int
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[bytes, bytes] = field(default_factory=dict)
    in_file: bool = False
    file_parts: int = 0
    file_bytes: int = 0
    pending: list[bytes] = field(default_factory=list)
    ended: bool = False
    # Text parts a client may send beside the file, read and dropped (a few KiB at most).
    ignored: frozenset[str] = frozenset()
    ignored_bytes: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)

    def on_part_begin(self) -> None:
        self.headers = {}
        self.in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self.headers.get(_CONTENT_DISPOSITION))
        if disposition != b"form-data" or b"name" not in options:
            raise malformed("every part needs Content-Disposition: form-data with a name")
        name = options[b"name"].decode("utf-8", "replace")
        if name in self.ignored:
            self.in_file = False
            return
        if name != FILE_FIELD:
            error = Unprocessable("The request is not valid.")
            error.errors = [
                {
                    "field": f"body.{name}",
                    "message": "Extra inputs are not permitted",
                    "type": "extra_forbidden",
                }
            ]
            raise error
        self.file_parts += 1
        if self.file_parts > 1:
            raise malformed("send exactly one `file` part")
        self.in_file = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self.in_file:
            self.ignored_bytes += end - start
            if self.ignored_bytes > MULTIPART_OVERHEAD:
                raise malformed("the parts beside the file are too long")
            return
        self.file_bytes += end - start
        if self.file_bytes > self.max_bytes:
            raise too_large(self.max_bytes)
        self.pending.append(data[start:end])
        self.digest.update(data[start:end])

    def on_end(self) -> None:
        self.ended = True


@asynccontextmanager
async def receive_file(
    request: Request, scratch_dir: Path, max_bytes: int, *, ignored: frozenset[str] = frozenset()
) -> AsyncIterator[ReceivedFile]:
    """Stream the request's multipart `file` part into a scratch file, deleted on exit.
    Parts named in `ignored` are read and dropped (Mastodon apps send `description`).

    415 when the body is not `multipart/form-data`, 413 `payload_too_large` as soon as
    the file passes `max_bytes`, 422 when the body is malformed or has no `file` part
    or other fields beside it, 503 `storage_full` (with `Retry-After`) when the disk
    fills up under the scratch file.
    """
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise UnsupportedMediaType("Send the image as multipart/form-data, in a part named `file`.")
    boundary = options.get(b"boundary")
    if not boundary:
        raise malformed("the Content-Type has no boundary")
    body_cap = max_bytes + MULTIPART_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_cap:
        raise too_large(max_bytes)

    path = scratch_dir / f"{secrets.token_hex(16)}.upload"
    reader = _PartReader(max_bytes=max_bytes, ignored=ignored)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": reader.on_part_begin,
            "on_part_data": reader.on_part_data,
            "on_header_field": reader.on_header_field,
            "on_header_value": reader.on_header_value,
            "on_header_end": reader.on_header_end,
            "on_headers_finished": reader.on_headers_finished,
            "on_end": reader.on_end,
        },
    )
    try:
        try:
            await asyncio.to_thread(scratch_dir.mkdir, parents=True, exist_ok=True)
            await _stream_into(request, path, parser, reader, body_cap)
        except OSError as exc:
            if is_disk_full(exc):
                raise storage_full() from None
            raise
        if not reader.ended:
            raise malformed("the body ends before its closing boundary")
        if reader.file_parts == 0:
            raise missing_file()
        yield ReceivedFile(path=path, size=reader.file_bytes, sha256=reader.digest.hexdigest())
    finally:
        await anyio.Path(path).unlink(missing_ok=True)


async def _stream_into(
    request: Request, path: Path, parser: MultipartParser, reader: _PartReader, body_cap: int
) -> None:
    received = 0
    try:
        async with await anyio.open_file(path, "xb") as scratch:
            async for chunk in request.stream():
                received += len(chunk)
                if received > body_cap:
                    raise too_large(reader.max_bytes)
                try:
                    parser.write(chunk)
                except DomainError:
                    raise
                except Exception:
                    raise malformed("the body does not follow its multipart boundary") from None
                if reader.pending:
                    await scratch.write(b"".join(reader.pending))
                    reader.pending.clear()
            parser.finalize()
    except ClientDisconnect:
        # Nobody is left to read an answer; this keeps the log free of a spurious 500.
        raise UploadInterrupted() from None
