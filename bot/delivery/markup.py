"""Telegram HTML against Telegram's 4096-character message limit.

Long replies are split into several messages, each valid markup on its own;
nothing here knows of the Bot API, only its markup rules.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

TELEGRAM_LIMIT = 4096

_TAG = re.compile(r"<(/?)([a-z-]+)([^>]*)>")


def _tokens(markup: str) -> Iterator[tuple[str, str]]:
    """('tag', '<b>') and ('text', 'words') pieces of Telegram HTML."""
    cursor = 0
    for match in _TAG.finditer(markup):
        if match.start() > cursor:
            yield "text", markup[cursor : match.start()]
        yield "tag", match.group(0)
        cursor = match.end()
    if cursor < len(markup):
        yield "text", markup[cursor:]


def _cut_point(text: str, room: int) -> int:
    """Where to cut a text piece so it fits `room`: a line break, else a space, never inside `&amp;`."""
    window = text[:room]
    for separator in ("\n\n", "\n", " "):
        found = window.rfind(separator)
        if found > room // 3:
            return found + len(separator)
    amp = window.rfind("&")
    if amp != -1 and ";" not in window[amp:]:
        return amp or room
    return room


def split_message(markup: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Split HTML into messages of at most `limit` characters.

    Cuts fall at paragraph, line or word boundaries; tags open at a cut are
    closed at the end of one message and reopened at the start of the next,
    so each message is valid markup on its own.
    """
    if len(markup) <= limit:
        return [markup]
    messages: list[str] = []
    current = ""
    stack: list[tuple[str, str]] = []  # (name, opening tag)

    def closing() -> str:
        return "".join(f"</{name}>" for name, _ in reversed(stack))

    def flush() -> None:
        nonlocal current
        messages.append(current + closing())
        current = "".join(opening for _, opening in stack)

    for kind, piece in _tokens(markup):
        if kind == "tag":
            match = _TAG.match(piece)
            assert match is not None
            closing_tag, name = match.group(1) == "/", match.group(2)
            if len(current) + len(piece) + len(closing()) > limit:
                flush()
            current += piece
            if closing_tag:
                if stack and stack[-1][0] == name:
                    stack.pop()
            else:
                stack.append((name, piece))
            continue
        while piece:
            room = limit - len(current) - len(closing())
            if len(piece) <= room:
                current += piece
                break
            if room < 40 and _visible(current):
                flush()
                continue
            cut = _cut_point(piece, max(room, 1))
            current += piece[:cut]
            piece = piece[cut:]
            flush()
    if current.strip():
        messages.append(current + closing())
    return [message for message in messages if _visible(message)]


def _visible(message: str) -> bool:
    return bool(_TAG.sub("", message).strip())


def plain_text(markup: str) -> str:
    """What a reader sees of some HTML, for a file: tags dropped, entities decoded."""
    return html.unescape(_TAG.sub("", markup))


def cut_to(markup: str, max_messages: int) -> tuple[list[str], bool]:
    """The messages to send for `markup`, at most `max_messages`, and whether it was cut.

    A cut answer keeps one message fewer than allowed: the last place goes to
    the file holding the whole answer.
    """
    parts = split_message(markup)
    if len(parts) <= max_messages:
        return parts, False
    return parts[: max(1, max_messages - 1)], True
