"""Numbers people type or button data carries: one way to read them, everywhere.

Python's own readers are too generous for input from strangers: `str.isdigit()`
holds for '²', which `int()` then rejects (a traceback where a usage hint was
due), and `int()` and `float()` take Arabic-Indic and other Unicode digits,
underscores (`1_000`) and surrounding spaces. Here a number is ASCII digits
only, with an optional leading minus and, for a decimal, one point; its size is
bounded before it is converted and its value checked against the caller's
bounds. Anything else reads as None, so no input can raise.
"""

from __future__ import annotations

import re

# Up to 18 digits: every Telegram id, count and duration fits, and int() never sees more.
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_DECIMAL = re.compile(r"-?(?:[0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})")


def parse_int(text: str, minimum: int, maximum: int) -> int | None:
    """The integer `text` spells in ASCII digits, if it lies in [minimum, maximum]; else None."""
    if _INTEGER.fullmatch(text) is None:
        return None
    value = int(text)
    return value if minimum <= value <= maximum else None


def parse_decimal(text: str, minimum: float, maximum: float) -> float | None:
    """The number `text` spells (`0.7`, `-2`, `.5`), if it lies in [minimum, maximum]; else None."""
    if _DECIMAL.fullmatch(text) is None:
        return None
    value = float(text)
    return value if minimum <= value <= maximum else None
