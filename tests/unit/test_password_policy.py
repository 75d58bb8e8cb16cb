from __future__ import annotations

import pytest

from kith.auth.password_policy import common_passwords, password_problem


def test_common_list_ships_with_the_package() -> None:
    assert "password123" in common_passwords()
    assert all(len(word) >= 8 for word in common_passwords())


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Password123", "common"),
        ("ada_lovelace", "username"),
        ("ADA@example.com", "e-mail"),
        ("ada", "e-mail"),
    ],
)
def test_refused_passwords(password: str, reason: str) -> None:
    problem = password_problem(password, username="ada_lovelace", email="ada@example.com")
    assert problem is not None
    assert reason in problem


def test_good_password_passes() -> None:
    assert password_problem("correct horse battery", username="ada", email="ada@example.com") is None
