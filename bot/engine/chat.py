"""A conversation as a model reads it: the model's own chat template, trimmed to its context.

The handlers hand the pool a `ChatPrompt` (system prompt, earlier turns, the
new message); whichever engine serves it renders it here with the model's
tokenizer, dropping the oldest turns until the prompt plus `max_new_tokens`
fits, and reports how many it dropped so the person can be told. Nothing here
knows about Telegram or about where a conversation is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from bot.errors import ContextTooLong, EmptyInput

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class ChatPrompt:
    """What one turn of a conversation asks: the system prompt, earlier turns, the new message."""

    system: str | None
    history: tuple[ChatMessage, ...]
    message: str

    def messages(self, keep_from: int = 0) -> list[dict[str, str]]:
        """The conversation for a chat template, its history from turn `keep_from` on."""
        system = [ChatMessage("system", self.system)] if self.system else []
        kept = list(self.history[keep_from:])
        return [m.as_dict() for m in (*system, *kept, ChatMessage("user", self.message))]


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
    its own (with the system prompt) is refused with the limit.
    """
    for dropped, messages in _shorter_and_shorter(prompt):
        ids = _render(tokenizer, messages)
        if len(ids) + max_new_tokens <= limit:
            return FittedChat(ids, dropped)
    raise ContextTooLong(tokens=len(ids) + max_new_tokens, limit=limit)


def fit_estimated(
    prompt: ChatPrompt, max_new_tokens: int, limit: int
) -> tuple[list[dict[str, str]], int]:
    """The same trimming where the tokenizer is out of reach (a remote engine), by estimate.

    The estimate errs long: a token per CJK character, one per three others,
    and a few for each message's framing. Returns the messages and the turns dropped.
    """
    for dropped, messages in _shorter_and_shorter(prompt):
        tokens = sum(estimate_tokens(message["content"]) + 4 for message in messages)
        if tokens + max_new_tokens <= limit:
            return messages, dropped
    raise ContextTooLong(tokens=tokens + max_new_tokens, limit=limit)


def estimate_tokens(text: str) -> int:
    wide = sum(1 for char in text if ord(char) >= 0x2E80)
    return wide + (len(text) - wide + 2) // 3


def _shorter_and_shorter(prompt: ChatPrompt) -> list[tuple[int, list[dict[str, str]]]]:
    """The conversation with 0, 1, 2 … of its oldest turns dropped, down to the new message.

    Turns (a person's message and what answered it) go whole, so what a
    template sees still starts with a person speaking, as most templates require.
    """
    history = prompt.history
    turns = [i for i, message in enumerate(history) if message.role == "user"]
    starts = sorted({0, *turns, len(history)})
    return [(dropped, prompt.messages(start)) for dropped, start in enumerate(starts)]


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
