"""Per-user parameters, each with its allowed range: generation under transformers' own names,
pictures under short ones (`steps`, `guidance`, `size`, `seed`) that the picture runner maps
onto diffusers' arguments.

A value a user types (or a stored JSON value) becomes a valid value here or is
refused with the range it must lie in; nothing else in the bot parses them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.errors import InvalidParamValue
from bot.numbers import parse_decimal

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
        number = (
            float(raw)
            if isinstance(raw, int | float)
            else parse_decimal(str(raw).strip(), -math.inf, math.inf)
        )
        if number is None or not math.isfinite(number):
            return None
        if self.type is int:
            return int(number) if number.is_integer() else None
        return number


# Width × height of a picture: multiples of 64 (what latent diffusion models' autoencoders
# and UNets divide evenly), square or 2:3 either way up; a bare number means a square.
PICTURE_SIZES = (
    "256x256",
    "384x384",
    "512x512",
    "512x768",
    "768x512",
    "640x640",
    "768x768",
    "768x1152",
    "1152x768",
    "1024x1024",
)
_SQUARE_ALIASES = {
    **{
        size.split("x")[0]: size
        for size in PICTURE_SIZES
        if size.split("x")[0] == size.split("x")[1]
    },
    **{size.replace("x", "×"): size for size in PICTURE_SIZES},
    **{size.replace("x", "*"): size for size in PICTURE_SIZES},
}


def picture_size(value: str) -> tuple[int, int]:
    """(width, height) of a `size` value as the registry stores it (`512x768`)."""
    width, _, height = value.partition("x")
    return int(width), int(height)


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
        # /imagine. Few-step distilled models (the default draws in one step) want no
        # classifier-free guidance; a 25-step model wants 7 or so.
        ParamSpec("steps", int, 1, 1, 50),
        ParamSpec("guidance", float, 0.0, 0.0, 20.0),
        ParamSpec("size", str, "512x512", choices=PICTURE_SIZES, aliases=_SQUARE_ALIASES),
        # -1 draws a new seed for each picture; the seed used is told with the picture.
        ParamSpec("seed", int, -1, -1, 2**32 - 1),
    )
}

GENERATION_PARAMS = (
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "num_return_sequences",
    "do_sample",
)
PICTURE_PARAMS = ("steps", "guidance", "size", "seed")

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
        # Conversation answers in private chats also arrive as a voice note (/say's voice).
        ParamSpec("voice_replies", bool, False),
    )
}
SEQ2SEQ_PARAMS = ("max_new_tokens", "num_return_sequences", "repetition_penalty")
# A conversation has one answer per turn, so no num_return_sequences.
CHAT_PARAMS = tuple(name for name in GENERATION_PARAMS if name != "num_return_sequences")
SAMPLING_ONLY = ("temperature", "top_k", "top_p")
