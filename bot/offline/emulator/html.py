"""Telegram's HTML parse mode, checked the way the Bot API server checks it.

The emulator rejects what Telegram rejects, so a reply that would fail in production
("can't parse entities") fails in tests too, and it returns the plain text with
entities, as Telegram does, so the bot reads back what a user would see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.entities import name2codepoint
from html.parser import HTMLParser
from typing import Any

_TAG_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}

_COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")


class EntityParseError(ValueError):
    """The text is not valid for its parse mode; the message is Telegram's wording."""


def utf16_len(text: str) -> int:
    """Telegram measures entity offsets in UTF-16 code units, not code points."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[dict[str, Any]]:
    """The bot_command entity Telegram attaches to a message that starts with /command."""
    match = _COMMAND.match(text)
    if match is None:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group(0))}]


@dataclass
class _OpenTag:
    tag: str
    entity: dict[str, Any] | None
    start: int
    byte_offset: int


class _TelegramHtml(HTMLParser):
    """Collects plain text and entities; raises at the first construct Telegram refuses."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=False)
        self.source = source
        self.text: list[str] = []
        self.entities: list[dict[str, Any]] = []
        self.stack: list[_OpenTag] = []
        self.length = 0
        self._line_starts = [0]
        for index, char in enumerate(self.source):
            if char == "\n":
                self._line_starts.append(index + 1)

    def byte_offset(self) -> int:
        line, column = self.getpos()
        index = self._line_starts[line - 1] + column
        return len(self.source[:index].encode())

    def append(self, data: str) -> None:
        self.text.append(data)
        self.length += utf16_len(data)

    def handle_data(self, data: str) -> None:
        if "<" in data:
            raise EntityParseError(
                f'Unsupported start tag "" at byte offset {self.byte_offset() + data.index("<")}'
            )
        self.append(data)

    def handle_entityref(self, name: str) -> None:
        codepoint = name2codepoint.get(name)
        self.append(chr(codepoint) if codepoint is not None else f"&{name};")

    def handle_charref(self, name: str) -> None:
        try:
            value = int(name[1:], 16) if name[:1] in "xX" else int(name)
            self.append(chr(value))
        except (ValueError, OverflowError):
            self.append(f"&#{name};")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        offset = self.byte_offset()
        kind = _TAG_ENTITY.get(tag)
        if kind is None:
            raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {offset}')
        attributes = {name: value or "" for name, value in attrs}
        entity: dict[str, Any] | None = {"type": kind}
        if tag == "span" and attributes.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {offset}'
            )
        if tag == "a":
            entity = {"type": kind, "url": attributes["href"]} if attributes.get("href") else None
        elif tag == "tg-emoji":
            emoji_id = attributes.get("emoji-id")
            if not emoji_id:
                raise EntityParseError(
                    f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {offset}'
                )
            entity = {"type": kind, "custom_emoji_id": emoji_id}
        elif tag == "blockquote" and "expandable" in attributes:
            entity = {"type": "expandable_blockquote"}
        elif tag == "code" and self.stack and self.stack[-1].tag == "pre":
            language = attributes.get("class", "")
            pre = self.stack[-1].entity
            if language.startswith("language-") and pre is not None:
                pre["language"] = language.removeprefix("language-")
                entity = None
        self.stack.append(_OpenTag(tag, entity, self.length, offset))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {self.byte_offset()}')

    def handle_endtag(self, tag: str) -> None:
        offset = self.byte_offset()
        if not self.stack:
            raise EntityParseError(f"Unexpected end tag at byte offset {offset}")
        opened = self.stack.pop()
        if opened.tag != tag:
            raise EntityParseError(
                f'Unmatched end tag at byte offset {offset}, expected "</{opened.tag}>", '
                f'found "</{tag}>"'
            )
        if opened.entity is not None and self.length > opened.start:
            opened.entity.update(offset=opened.start, length=self.length - opened.start)
            self.entities.append(opened.entity)

    def _unsupported(self) -> None:
        raise EntityParseError(f"Unsupported start tag at byte offset {self.byte_offset()}")

    def handle_comment(self, data: str) -> None:
        self._unsupported()

    def handle_decl(self, decl: str) -> None:
        self._unsupported()

    def handle_pi(self, data: str) -> None:
        self._unsupported()

    def unknown_decl(self, data: str) -> None:
        self._unsupported()


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities of an HTML-formatted message, or EntityParseError."""
    parser = _TelegramHtml(source)
    parser.feed(source)
    parser.close()
    if parser.stack:
        raise EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{parser.stack[-1].tag}"'
        )
    entities = sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))
    return "".join(parser.text), entities
