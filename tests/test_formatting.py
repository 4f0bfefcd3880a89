"""What a reader sees: escaped results, score bars, messages split at Telegram's limit."""

from __future__ import annotations

import re
import string
from html.parser import HTMLParser

import pytest

from bot.formatting import (
    format_classification,
    format_entities,
    format_generation,
    format_zero_shot,
    score_bar,
    split_message,
)
from bot.i18n import CATALOGS, EN, pick_language, t


def test_score_bar_shows_the_share_filled_and_the_percentage() -> None:
    assert score_bar(0.5) == "█████░░░░░ 50%"
    assert score_bar(1.3) == "██████████ 100%"
    assert score_bar(0.0) == "░░░░░░░░░░ 0%"


def test_model_output_and_user_text_are_escaped() -> None:
    reply = format_generation([{"generated_text": "<b>hi</b> & <script>"}], "<b>hi</b>")
    assert "<script>" not in reply
    assert reply == "<blockquote><b>&lt;b&gt;hi&lt;/b&gt;</b> &amp; &lt;script&gt;</blockquote>"
    label = format_classification([{"label": "<evil>", "score": 0.9}], "x")
    assert "<evil>" not in label


def test_classification_lists_labels_best_first() -> None:
    reply = format_classification(
        [{"label": "NEGATIVE", "score": 0.2}, {"label": "POSITIVE", "score": 0.8}], "x"
    )
    assert reply.splitlines()[0] == "<b>POSITIVE</b>"
    assert reply.index("<code>POSITIVE") < reply.index("<code>NEGATIVE")


def test_entities_are_highlighted_in_the_text() -> None:
    text = "Alice lives in Paris & more"
    entities = [
        {"entity_group": "PER", "start": 0, "end": 5, "word": "Alice", "score": 0.9},
        {"entity_group": "LOC", "start": 15, "end": 20, "word": "Paris", "score": 0.8},
    ]
    assert format_entities(entities, text) == (
        "<b>Alice</b><i>[PER]</i> lives in <b>Paris</b><i>[LOC]</i> &amp; more"
    )
    assert format_entities([], text) == ""


def test_zero_shot_pairs_each_label_with_its_score() -> None:
    reply = format_zero_shot({"labels": ["happy", "sad"], "scores": [0.7, 0.3]}, "x")
    assert reply.startswith("<b>happy</b>")
    assert "70%" in reply and "30%" in reply


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


def test_both_languages_have_every_message_with_the_same_placeholders() -> None:
    def fields(template: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}

    for language, catalog in CATALOGS.items():
        assert catalog.keys() == EN.keys(), language
        for key, template in catalog.items():
            assert fields(template) == fields(EN[key]), (language, key)


def test_values_are_escaped_and_missing_ones_do_not_crash() -> None:
    assert t("en", "error.unknown_model", model="<x>") == "I can't find the model “&lt;x&gt;”."
    assert t("en", "error.unknown_model") == "I can't find the model “?”."


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        (("zh-hans",), "zh"),
        ((None, "zh_TW"), "zh"),
        (("fr",), "en"),
        ((None, None), "en"),
        (("en", "zh"), "en"),
    ],
)
def test_language_is_the_first_supported_choice(
    codes: tuple[str | None, ...], expected: str
) -> None:
    assert pick_language(*codes) == expected
