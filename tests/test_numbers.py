"""The one reader of numbers people type: ASCII digits, bounded, never an exception."""

from __future__ import annotations

import pytest

from bot.numbers import parse_decimal, parse_int


@pytest.mark.parametrize(
    "text", ["²", "٣", "１", "𝟙", "Ⅻ", "1_0", "0x10", "+5", " 5", "5 ", "5\n", "", "-", "9" * 19]
)
def test_anything_but_ascii_digits_reads_as_no_integer(text: str) -> None:
    assert parse_int(text, -(10**30), 10**30) is None


def test_integers_are_read_within_their_bounds() -> None:
    assert parse_int("42", 1, 100) == 42
    assert parse_int("-1001234567890", -(2**52), 2**52) == -1001234567890
    assert parse_int("0", 1, 100) is None
    assert parse_int("101", 1, 100) is None


@pytest.mark.parametrize("text", ["٠.٥", "0.５", "1e3", "nan", "inf", "1.2.3", ".", "1_0.5", "½"])
def test_anything_but_an_ascii_decimal_reads_as_no_number(text: str) -> None:
    assert parse_decimal(text, -1e9, 1e9) is None


def test_decimals_are_read_within_their_bounds() -> None:
    assert parse_decimal("0.7", 0, 2) == 0.7
    assert parse_decimal(".5", 0, 2) == 0.5
    assert parse_decimal("-2", -5, 5) == -2.0
    assert parse_decimal("2.5", 0, 2) is None
