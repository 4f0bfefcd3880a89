"""A conversation as a model reads it: the model's own chat template, trimmed to its context.

The handlers hand the pool a `ChatPrompt` (system prompt, earlier turns, the
new message); whichever engine serves it renders it here with the model's
tokenizer, dropping the oldest turns until the prompt plus `max_new_tokens`
fits, and reports how many it dropped so the person can be told. Nothing here
knows about Telegram or about where a conversation is stored.

A turn may carry pictures (`ImageBytes`). A model that sees (`bot.engine.vision_chat`)
is shown the newest `IMAGES_SHOWN` of a conversation and reads the others' names;
every picture is encoded again at every turn, so on a CPU an old photo would cost
each answer seconds for little. A text-only model reads every picture's name
and refuses a new one (`ImagesNotSupported`), so switching models keeps the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.engine.inputs import ImageBytes
from bot.errors import ContextTooLong, EmptyInput, ImagesNotSupported
from bot.tasks import VISION_CHAT_MODEL

Role = Literal["system", "user", "assistant"]

# How a picture reads where it is not shown: to a text-only model, or past IMAGES_SHOWN.
IMAGE_PLACEHOLDER = "[photo]"
IMAGES_SHOWN = 2
# What a shown picture is guessed to cost where no processor can count it (a remote
# engine): a 1280×960 phone photo on Qwen2.5-VL at its default resolution, the most
# of the common families (LLaVA-1.5 takes 576, SmolVLM about 450, Gemma 3 256).
IMAGE_TOKENS_ESTIMATE = 1600


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str
    images: tuple[ImageBytes, ...] = ()

    def as_dict(self, shown: int = 0) -> dict[str, str]:
        """The message for a text template: pictures beyond the last `shown` only named."""
        named = [IMAGE_PLACEHOLDER] * (len(self.images) - min(shown, len(self.images)))
        return {"role": self.role, "content": " ".join([*named, self.content]).strip()}


@dataclass(frozen=True)
class ChatPrompt:
    """What one turn of a conversation asks: the system prompt, earlier turns, the new
    message and the pictures sent with it."""

    system: str | None
    history: tuple[ChatMessage, ...]
    message: str
    images: tuple[ImageBytes, ...] = ()

    def turns(self, keep_from: int = 0) -> list[ChatMessage]:
        """The conversation from history turn `keep_from` on, system prompt first."""
        system = [ChatMessage("system", self.system)] if self.system else []
        kept = list(self.history[keep_from:])
        return [*system, *kept, ChatMessage("user", self.message, self.images)]

    def messages(self, keep_from: int = 0) -> list[dict[str, str]]:
        """The conversation for a text-only chat template, every picture named."""
        return [message.as_dict() for message in self.turns(keep_from)]


def shown_images(turns: Sequence[ChatMessage], limit: int = IMAGES_SHOWN) -> list[int]:
    """How many of each message's pictures (its last ones) a model that sees is shown:
    the newest `limit` of the conversation."""
    left = limit
    shown = [0] * len(turns)
    for index in range(len(turns) - 1, -1, -1):
        shown[index] = min(left, len(turns[index].images))
        left -= shown[index]
    return shown


@dataclass(frozen=True)
class FittedChat:
    """A conversation that fits: its token ids, and how many earlier turns had to go."""

    input_ids: list[int]
    dropped_turns: int


class ChatTokenizer(Protocol):
    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


def fit_conversation(
    tokenizer: ChatTokenizer, prompt: ChatPrompt, max_new_tokens: int, limit: int
) -> FittedChat:
    """The longest recent part of the conversation whose prompt leaves room to answer.

    Counted with the model's own tokenizer and template. A message too long on
    its own (with the system prompt) is refused with the limit; a new picture is
    refused, since this tokenizer's model reads text only.
    """
    if prompt.images:
        raise ImagesNotSupported(suggestion=VISION_CHAT_MODEL)
    for dropped, turns in trimmed_conversations(prompt):
        ids = _render(tokenizer, [message.as_dict() for message in turns])
        if len(ids) + max_new_tokens <= limit:
            return FittedChat(ids, dropped)
    raise ContextTooLong(tokens=len(ids) + max_new_tokens, limit=limit)


def fit_estimated(
    prompt: ChatPrompt, max_new_tokens: int, limit: int
) -> tuple[list[ChatMessage], int]:
    """The same trimming where the tokenizer is out of reach (a remote engine), by estimate.

    The estimate errs long: a token per CJK character, one per three others,
    a few for each message's framing, IMAGE_TOKENS_ESTIMATE for each picture
    shown. Returns the messages (pictures shown as `shown_images` says) and the
    turns dropped.
    """
    for dropped, turns in trimmed_conversations(prompt):
        shown = shown_images(turns)
        tokens = sum(
            estimate_tokens(message.as_dict(count)["content"]) + 4 + IMAGE_TOKENS_ESTIMATE * count
            for message, count in zip(turns, shown, strict=True)
        )
        if tokens + max_new_tokens <= limit:
            return turns, dropped
    raise ContextTooLong(tokens=tokens + max_new_tokens, limit=limit)


def estimate_tokens(text: str) -> int:
    wide = sum(1 for char in text if ord(char) >= 0x2E80)
    return wide + (len(text) - wide + 2) // 3


def trimmed_conversations(prompt: ChatPrompt) -> list[tuple[int, list[ChatMessage]]]:
    """The conversation with 0, 1, 2 … of its oldest turns dropped, down to the new message.

    Turns (a person's message and what answered it) go whole, so what a
    template sees still starts with a person speaking, as most templates require.
    """
    history = prompt.history
    turns = [i for i, message in enumerate(history) if message.role == "user"]
    starts = sorted({0, *turns, len(history)})
    return [(dropped, prompt.turns(start)) for dropped, start in enumerate(starts)]


def _render(tokenizer: ChatTokenizer, messages: Sequence[dict[str, str]]) -> list[int]:
    ids = tokenizer.apply_chat_template(
        list(messages), add_generation_prompt=True, tokenize=True, return_dict=False
    )
    if not ids:
        raise EmptyInput()
    return list(ids)


def chat_result(reply: str, fitted: FittedChat) -> dict[str, Any]:
    """The pool's answer to a chat turn, whichever engine produced it."""
    return {"generated_text": reply, "dropped_turns": fitted.dropped_turns}
