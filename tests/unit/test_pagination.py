from __future__ import annotations

import pytest

from kith.core.errors import Unprocessable
from kith.core.pagination import decode_cursor, encode_cursor


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
