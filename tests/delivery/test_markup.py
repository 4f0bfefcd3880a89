"""Long replies split into messages within Telegram's limit, each valid markup on its own."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from bot.delivery.markup import split_message


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
        self.stack.pop()


def _assert_valid(markup: str) -> None:
    parser = _Balance()
    parser.feed(markup)
    assert parser.stack == []


@pytest.mark.parametrize("limit", [50, 200, 4096])
def test_long_markup_splits_into_balanced_messages_within_the_limit(limit: int) -> None:
    body = " ".join(f"word{n} &amp; more" for n in range(900))
    markup = f"<b>Title</b>\n<blockquote><b>{body[:300]}</b>{body}</blockquote>"
    parts = split_message(markup, limit)
    assert len(parts) > 1
    for part in parts:
        assert len(part) <= limit
        _assert_valid(part)
        assert not re.search(r"&[a-z]*$", re.sub(r"<[^>]+>", "", part)), "cut inside an entity"
    rejoined = re.sub(r"<[^>]+>", "", "".join(parts))
    assert rejoined.split() == re.sub(r"<[^>]+>", "", markup).split()


def test_a_word_longer_than_a_message_is_still_cut() -> None:
    parts = split_message("x" * 10_000)
    assert [len(p) for p in parts] == [4096, 4096, 1808]


def test_short_markup_is_one_message() -> None:
    assert split_message("<b>hi</b>") == ["<b>hi</b>"]
