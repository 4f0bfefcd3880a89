"""From a chat message to pipeline inputs: the command's own text, or the message it replies to.

One parser per input style of the task registry; each refuses bad input with
the error whose message tells the person how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from telegram import Message, MessageEntity

from bot.config import Settings
from bot.errors import EmptyInput, InputTooLong, LabelTooLong, TooManyLabels, UsageHint
from bot.numbers import parse_int
from bot.tasks import MASK_TOKENS, TRANSLATION_TARGETS, InputStyle, TaskSpec
from handlers.request.model_call import TaskRequest

_TARGET_PREFIX = re.compile(r"^\s*(?:to\s+)?([a-z]{2})\s*:\s*", re.IGNORECASE)
# Telegram's ids have at most 52 significant bits; groups and channels are below 0.
_ID_LIMIT = 2**52


def parse_id(text: str) -> int | None:
    """A Telegram id as typed or as button data carries it (a person's, or a group's or
    channel's, negative); None for anything else, 0 included."""
    return parse_int(text, -_ID_LIMIT, _ID_LIMIT) or None


def command_text(message: Message) -> str:
    """The words after the command (`/cmd@bot words`), newlines kept, from text or caption."""
    text = message.text or message.caption or ""
    entities = message.entities if message.text else message.caption_entities
    for entity in entities or ():
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            return text[entity.length :].strip()
    return text.strip()


def replied_text(message: Message) -> str | None:
    replied = message.reply_to_message
    if replied is None:
        return None
    return (replied.text or replied.caption or "").strip() or None


@dataclass(frozen=True)
class InputLimits:
    """What one command's input may be (from Settings)."""

    max_chars: int
    max_labels: int
    max_label_chars: int

    @classmethod
    def from_settings(cls, settings: Settings) -> InputLimits:
        return cls(settings.max_input_chars, settings.max_labels, settings.max_label_chars)


def _checked(text: str, spec: TaskSpec, limits: InputLimits) -> str:
    if not text:
        raise EmptyInput(command=spec.name)
    if len(text) > limits.max_chars:
        raise InputTooLong(length=len(text), limit=limits.max_chars)
    return text


def _plain(spec: TaskSpec, own: str, replied: str | None, limits: InputLimits) -> TaskRequest:
    text = _checked(own or replied or "", spec, limits)
    return TaskRequest(text=text, inputs=text)


def candidate_labels(spec: TaskSpec, words: str, limits: InputLimits) -> list[str]:
    """`cat, dog, car`: the labels a zero-shot command picks from, each once.

    Every label is one more pass of the model, so their number and length are
    bounded before anything is queued.
    """
    labels = list({label.strip().casefold(): label.strip() for label in words.split(",")}.values())
    labels = [label for label in labels if label]
    if len(labels) < 2:
        raise UsageHint(f"error.{spec.name}_needs_labels")
    if len(labels) > limits.max_labels:
        raise TooManyLabels(count=len(labels), limit=limits.max_labels)
    longest = max(labels, key=len)
    if len(longest) > limits.max_label_chars:
        raise LabelTooLong(length=len(longest), limit=limits.max_label_chars)
    return labels


def _labels(spec: TaskSpec, own: str, replied: str | None, limits: InputLimits) -> TaskRequest:
    """`/classify text | a, b` or, replying to a message, `/classify a, b`."""
    if "|" in own:
        text, _, labels = own.rpartition("|")
    elif replied:
        text, labels = replied, own
    else:
        text, labels = own, ""
    text = _checked(text.strip(), spec, limits)
    candidates = candidate_labels(spec, labels, limits)
    return TaskRequest(text=text, inputs=text, call_params={"candidate_labels": candidates})


def _question(spec: TaskSpec, own: str, replied: str | None, limits: InputLimits) -> TaskRequest:
    """`/ask question` as a reply to the message that holds the answer."""
    if not replied:
        raise UsageHint("error.ask_needs_context")
    question = _checked(own, spec, limits)
    context = _checked(replied, spec, limits)
    return TaskRequest(text=context, inputs={"question": question, "context": context})


def _mask(spec: TaskSpec, own: str, replied: str | None, limits: InputLimits) -> TaskRequest:
    text = _checked(own or replied or "", spec, limits)
    if not MASK_TOKENS.search(text):
        raise UsageHint("error.fill_needs_mask")
    return TaskRequest(text=text, inputs=text)


def _translate(spec: TaskSpec, own: str, replied: str | None, limits: InputLimits) -> TaskRequest:
    """`/translate fr: text` picks the target language; without it the user's model decides."""
    target = _TARGET_PREFIX.match(own)
    model = None
    if target and target.group(1).lower() in TRANSLATION_TARGETS:
        model = TRANSLATION_TARGETS[target.group(1).lower()]
        own = own[target.end() :]
    text = _checked(own or replied or "", spec, limits)
    return TaskRequest(text=text, inputs=text, model_override=model)


PARSERS: dict[InputStyle, Callable[[TaskSpec, str, str | None, InputLimits], TaskRequest]] = {
    "text": _plain,
    "labels": _labels,
    "question": _question,
    "mask": _mask,
    "translate": _translate,
}


def parse_request(
    spec: TaskSpec, message: Message, limits: InputLimits, replied: str | None = None
) -> TaskRequest:
    """`replied` stands in for the replied message's text (a voice note's transcript)."""
    replied = replied if replied is not None else replied_text(message)
    return PARSERS[spec.input_style](spec, command_text(message), replied, limits)
