"""Generation parameters under transformers' own names, each with its allowed range.

A value a user types (or a stored JSON value) becomes a valid value here or is
refused with the range it must lie in; nothing else in the bot parses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.errors import InvalidParamValue

ParamType = type[int] | type[float] | type[bool] | type[str]
Value = int | float | bool | str

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ParamSpec:
    """One generation parameter, under transformers' own name, with its allowed range."""

    name: str
    type: ParamType
    default: Value
    minimum: float | None = None
    maximum: float | None = None
    # A text parameter is one of `choices`; `aliases` map other words (and stored
    # booleans of older versions, as "true"/"false") onto them.
    choices: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)

    def coerce(self, raw: object, maximum: float | None = None) -> Value:
        """Turn what a user typed (or a stored JSON value) into a valid value, or refuse it."""
        upper = self.maximum if maximum is None else maximum
        value = self._parse(raw)
        if value is None or (
            self.type in (int, float)
            and not isinstance(value, str)
            and (
                (self.minimum is not None and value < self.minimum)
                or (upper is not None and value > upper)
            )
        ):
            raise InvalidParamValue(
                param=self.name, value=str(raw), allowed=self.describe_range(upper)
            )
        return value

    def describe_range(self, maximum: float | None = None) -> str:
        upper = self.maximum if maximum is None else maximum
        if self.type is bool:
            return "on | off"
        if self.type is str:
            return " | ".join(self.choices)
        return f"{_fmt(self.minimum)} … {_fmt(upper)}"

    def _parse(self, raw: object) -> Value | None:
        if self.type is str:
            text = str(raw).strip().lower()
            text = self.aliases.get(text, text)
            return text if text in self.choices else None
        if self.type is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            return True if text in _TRUE else False if text in _FALSE else None
        if isinstance(raw, bool):
            return None
        try:
            number = float(str(raw).strip()) if not isinstance(raw, int | float) else float(raw)
        except ValueError:
            return None
        if number != number or number in (float("inf"), float("-inf")):
            return None
        if self.type is int:
            return int(number) if number.is_integer() else None
        return number


def _fmt(value: float | None) -> str:
    if value is None:
        return "∞"
    return str(int(value)) if float(value).is_integer() else str(value)


PARAMS: dict[str, ParamSpec] = {
    spec.name: spec
    for spec in (
        ParamSpec("max_new_tokens", int, 40, 1, 1024),
        ParamSpec("temperature", float, 0.8, 0.05, 2.0),
        ParamSpec("top_k", int, 50, 0, 500),
        ParamSpec("top_p", float, 0.95, 0.05, 1.0),
        ParamSpec("repetition_penalty", float, 1.0, 1.0, 2.0),
        ParamSpec("num_return_sequences", int, 1, 1, 5),
        ParamSpec("do_sample", bool, True),
    )
}

GENERATION_PARAMS = tuple(PARAMS)

# User-wide switches, not tied to a task; validated like parameters.
OPTIONS: dict[str, ParamSpec] = {
    spec.name: spec
    for spec in (
        # How answers stream: drafts in private chats and edits in groups (auto), one of
        # them everywhere, or not at all.
        ParamSpec(
            "stream",
            str,
            "auto",
            choices=("auto", "draft", "edit", "off"),
            aliases={**dict.fromkeys(_TRUE, "auto"), **dict.fromkeys(_FALSE, "off")},
        ),
        # Voice notes in private chats are transcribed without a command (groups: command only).
        ParamSpec("auto_transcribe", bool, False),
    )
}
SEQ2SEQ_PARAMS = ("max_new_tokens", "num_return_sequences", "repetition_penalty")
# A conversation has one answer per turn, so no num_return_sequences.
CHAT_PARAMS = tuple(name for name in PARAMS if name != "num_return_sequences")
SAMPLING_ONLY = ("temperature", "top_k", "top_p")
