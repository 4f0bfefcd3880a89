"""What a reader sees: escaped results and score bars."""

from __future__ import annotations

from bot.tasks.formatters import (
    format_classification,
    format_entities,
    format_generation,
    format_zero_shot,
    score_bar,
)


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
