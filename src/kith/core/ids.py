"""Time-ordered, opaque identifiers (UUIDv7, RFC 9562).

The canonical lower-case text form sorts in creation order, which keyset pagination
relies on. Within one process, ids made in the same millisecond still increase: the
12-bit ``rand_a`` field is used as a counter (RFC 9562 §6.2, method 1).
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_id() -> str:
    """Return a new UUIDv7 as a 36-character string."""
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms += 1
                _counter = 0
        ms, counter = _last_ms, _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand_b
    return str(uuid.UUID(int=value))


def id_timestamp_ms(value: str) -> int:
    """The Unix time in milliseconds encoded in a UUIDv7 string."""
    return uuid.UUID(value).int >> 80
