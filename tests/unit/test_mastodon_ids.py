"""Mastodon's ids and dates (kith.mastodon.ids): Kith's UUIDv7 ids as strings of digits that
round-trip and sort by time, and times written as Mastodon writes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from kith.core.ids import new_id
from kith.mastodon.ids import from_mastodon_id, mastodon_date, mastodon_datetime, to_mastodon_id

# Creation times whose ids have 37 digits: from 10**36 / 2**80 ms (March 1996) to just under
# 10**37 / 2**80 ms (2232), every id of which, whatever its random bits, has 37 digits.
MS = st.integers(min_value=827_180_612_554, max_value=8_271_806_125_529)
RANDOM = st.integers(min_value=0, max_value=(1 << 74) - 1)


def uuid7(ms: int, rand: int) -> str:
    """A UUIDv7 made of a millisecond time and 74 random bits, version and variant set."""
    rand_a, rand_b = rand >> 62, rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=(ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b))


@given(MS, RANDOM)
def test_an_id_round_trips_through_its_digits(ms: int, rand: int) -> None:
    kith_id = uuid7(ms, rand)
    digits = to_mastodon_id(kith_id)
    assert digits.isdigit() and len(digits) == 37
    assert from_mastodon_id(digits) == kith_id


@given(MS, RANDOM, MS, RANDOM)
def test_digits_sort_as_the_ids_do_by_time(ms_a: int, rand_a: int, ms_b: int, rand_b: int) -> None:
    a, b = uuid7(ms_a, rand_a), uuid7(ms_b, rand_b)
    digits_a, digits_b = to_mastodon_id(a), to_mastodon_id(b)
    # As text, as numbers and as Kith's ids: one order.
    assert (digits_a < digits_b) == (int(digits_a) < int(digits_b)) == (a < b)
    if ms_a < ms_b:
        assert digits_a < digits_b


def test_new_ids_in_a_row_keep_their_order() -> None:
    ids = [new_id() for _ in range(2_000)]
    digits = [to_mastodon_id(value) for value in ids]
    assert digits == sorted(digits)
    assert [from_mastodon_id(value) for value in digits] == ids


@given(st.text(max_size=45))
def test_anything_else_is_no_id_rather_than_an_error(text: str) -> None:
    found = from_mastodon_id(text)
    assert found is None or (text.isdigit() and uuid.UUID(found).int == int(text))


def test_ids_that_cannot_be_are_refused() -> None:
    assert from_mastodon_id("") is None
    assert from_mastodon_id("-1") is None
    assert from_mastodon_id("١٢٣") is None  # digits, but not ASCII ones
    assert from_mastodon_id(str(1 << 128)) is None
    assert from_mastodon_id(str((1 << 128) - 1)) == "ffffffff-ffff-ffff-ffff-ffffffffffff"
    assert from_mastodon_id("0" * 40) is None


def test_times_are_written_in_utc_with_milliseconds() -> None:
    moment = datetime(2026, 12, 5, 3, 45, 6, 789_123, tzinfo=UTC)
    assert mastodon_datetime(moment) == "2026-12-05T03:45:06.789Z"
    assert mastodon_datetime(moment.astimezone(timezone(timedelta(hours=2)))) == "2026-12-05T03:45:06.789Z"
    assert mastodon_datetime(moment.replace(microsecond=0)) == "2026-12-05T03:45:06.000Z"
    assert mastodon_date(moment) == "2026-12-05"
