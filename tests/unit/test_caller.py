"""The client address behind proxies, and the keys that rate limits count."""

from __future__ import annotations

import pytest
from starlette.types import Scope

from kith.http.caller import Caller, client_ip


def scope(peer: str | None, *forwarded: str) -> Scope:
    return {
        "type": "http",
        "client": (peer, 50000) if peer else None,
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


@pytest.mark.parametrize(
    ("peer", "forwarded", "proxies", "expected"),
    [
        # No trusted proxy: the header is ignored, whatever it says.
        ("203.0.113.5", ["198.51.100.1"], (), "203.0.113.5"),
        # A peer that is not one of the trusted proxies cannot forward anything.
        ("203.0.113.5", ["198.51.100.1"], ("10.0.0.0/8",), "203.0.113.5"),
        # Behind a trusted proxy: the right-most address, which the proxy itself added.
        ("10.0.0.2", ["198.51.100.1"], ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.2", ["6.6.6.6, 198.51.100.1"], ("10.0.0.0/8",), "198.51.100.1"),
        # Several trusted hops are skipped; spoofed entries left of the client are not believed.
        ("10.0.0.2", ["6.6.6.6, 198.51.100.1, 10.0.0.9"], ("10.0.0.0/8",), "198.51.100.1"),
        # Repeated headers read as one list.
        ("10.0.0.2", ["6.6.6.6", "198.51.100.1, 10.0.0.9"], ("10.0.0.0/8",), "198.51.100.1"),
        # Ports and brackets are dropped; IPv4-mapped IPv6 is IPv4.
        ("10.0.0.2", ["198.51.100.1:4431"], ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.2", ["[2001:db8::7]:443"], ("10.0.0.0/8",), "2001:db8::7"),
        ("::ffff:203.0.113.5", [], (), "203.0.113.5"),
        # A garbled hop makes the header worthless: the proxy's own address counts.
        ("10.0.0.2", ["198.51.100.1, not-an-ip"], ("10.0.0.0/8",), "10.0.0.2"),
        # Every hop trusted: the left-most is the best guess.
        ("10.0.0.2", ["10.0.0.7, 10.0.0.8"], ("10.0.0.0/8",), "10.0.0.7"),
        # A trusted proxy that sent no header is itself the client.
        ("10.0.0.2", [], ("10.0.0.0/8",), "10.0.0.2"),
        (None, [], (), "unknown"),
    ],
)
def test_client_ip(peer: str | None, forwarded: list[str], proxies: tuple[str, ...], expected: str) -> None:
    assert client_ip(scope(peer, *forwarded), proxies) == expected


def test_ipv6_addresses_are_grouped_by_their_64_and_ipv4_is_not() -> None:
    assert Caller(ip="2001:db8:1:2:aaaa::1").ip_group == "2001:db8:1:2::/64"
    assert Caller(ip="2001:db8:1:2:bbbb::9").ip_group == "2001:db8:1:2::/64"
    assert Caller(ip="2001:db8:1:3::1").ip_group == "2001:db8:1:3::/64"
    assert Caller(ip="203.0.113.5").ip_group == "203.0.113.5"


def test_users_are_counted_by_id_and_anonymous_callers_by_address_group() -> None:
    assert Caller(ip="203.0.113.5", user_id="u1").limit_key == "user:u1"
    assert Caller(ip="2001:db8::1").limit_key == "ip:2001:db8::/64"
    # Idempotency keys belong to the user, or to the exact address.
    assert Caller(ip="2001:db8::1", user_id="u1").owner == "u1"
    assert Caller(ip="2001:db8::1").owner == "ip:2001:db8::1"
