"""Password rules of NIST SP 800-63B: length, not the username or e-mail, not common."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def common_passwords() -> frozenset[str]:
    text = files("kith.data").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def password_problem(password: str, *, username: str | None, email: str | None) -> str | None:
    """Why `password` is refused, or None when it is acceptable. Length is checked by the schema."""
    lowered = password.lower()
    if username and lowered == username.lower():
        return "The password must not be the same as the username."
    if email and (lowered == email.lower() or lowered == email.lower().split("@")[0]):
        return "The password must not be the same as the e-mail address."
    if lowered in common_passwords():
        return "This password is too common; choose another."
    return None
