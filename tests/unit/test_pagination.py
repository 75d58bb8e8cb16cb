from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kith.core.errors import Unprocessable
from kith.core.pagination import decode_cursor, decode_timed_position, encode_cursor, encode_timed_position


def test_cursor_round_trip() -> None:
    cursor = encode_cursor("01a20c5e-4b23-7209-b124-eef56c1e3b2b")
    assert "=" not in cursor
    assert decode_cursor(cursor) == "01a20c5e-4b23-7209-b124-eef56c1e3b2b"


@pytest.mark.parametrize(
    "garbage", ["", "!!!", "bm90IGpzb24", encode_cursor("x")[:-3], "eyJhZnRlciI6IDV9", "é"]
)
def test_bad_cursors_are_422(garbage: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        decode_cursor(garbage)
    assert caught.value.code == "invalid_cursor"


def test_timed_position_round_trip() -> None:
    moment = datetime(2026, 11, 24, 7, 13, 51, 123456, tzinfo=UTC)
    position = encode_timed_position(moment, "01a20c5e-4b23-7209-b124-eef56c1e3b2b")
    assert decode_cursor(encode_cursor(position)) == position
    assert decode_timed_position(position) == (moment, "01a20c5e-4b23-7209-b124-eef56c1e3b2b")


@pytest.mark.parametrize(
    "garbage",
    ["01a20c5e-4b23-7209-b124-eef56c1e3b2b", "2026-11-24T07:13:51|x", "2026-11-24T07:13:51+00:00|", "x|y"],
)
def test_bad_timed_positions_are_422(garbage: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        decode_timed_position(garbage)
    assert caught.value.code == "invalid_cursor"
