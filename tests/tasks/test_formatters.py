"""What a reader sees: a pipeline's output, read by its row's reader and written by its
formatter, escaped, with score bars; and output of the wrong shape refused, not half-shown."""

from __future__ import annotations

import pytest

from bot.tasks import TASKS, ChatReply, MalformedResult, Texts
from bot.tasks.formatters import score_bar


def reply(task: str, raw: object, text: str = "x") -> str:
    result = TASKS[task].result
    return result.format(result.read(raw), text)


def test_score_bar_shows_the_share_filled_and_the_percentage() -> None:
    assert score_bar(0.5) == "█████░░░░░ 50%"
    assert score_bar(1.3) == "██████████ 100%"
    assert score_bar(0.0) == "░░░░░░░░░░ 0%"


def test_model_output_and_user_text_are_escaped() -> None:
    answer = reply("generate", [{"generated_text": "<b>hi</b> & <script>"}], "<b>hi</b>")
    assert "<script>" not in answer
    assert answer == "<blockquote><b>&lt;b&gt;hi&lt;/b&gt;</b> &amp; &lt;script&gt;</blockquote>"
    assert "<evil>" not in reply("sentiment", [{"label": "<evil>", "score": 0.9}])


def test_classification_lists_labels_best_first() -> None:
    answer = reply(
        "sentiment", [{"label": "NEGATIVE", "score": 0.2}, {"label": "POSITIVE", "score": 0.8}]
    )
    assert answer.splitlines()[0] == "<b>POSITIVE</b>"
    assert answer.index("<code>POSITIVE") < answer.index("<code>NEGATIVE")


def test_entities_are_highlighted_in_the_text_in_order_and_never_overlapping() -> None:
    text = "Alice lives in Paris & more"
    entities = [
        {"entity_group": "LOC", "start": 15, "end": 20, "word": "Paris", "score": 0.8},
        {"entity": "B-PER", "start": 0, "end": 5, "word": "Alice", "score": 0.9},
        {"entity_group": "PER", "start": 2, "end": 5, "word": "ice", "score": 0.5},
        {"entity_group": "MISC", "start": None, "end": None, "word": "?", "score": 0.5},
    ]
    assert reply("ner", entities, text) == (
        "<b>Alice</b><i>[PER]</i> lives in <b>Paris</b><i>[LOC]</i> &amp; more"
    )
    assert reply("ner", [], text) == ""


def test_zero_shot_pairs_each_label_with_its_score() -> None:
    answer = reply("classify", {"labels": ["sad", "happy"], "scores": [0.3, 0.7]})
    assert answer.startswith("<b>happy</b>")
    assert "70%" in answer and "30%" in answer


def test_fill_mask_shows_the_best_sentence_then_the_first_gaps_candidates() -> None:
    first_gap = [
        {"sequence": "paris is nice", "token_str": "nice", "score": 0.6},
        {"sequence": "paris is big", "token_str": "big", "score": 0.3},
    ]
    second_gap = [{"sequence": "paris is old", "token_str": "old", "score": 0.9}]
    answer = reply("fill", [first_gap, second_gap])
    assert answer.startswith("paris is nice\n\n")
    assert "old" not in answer and "big" in answer


def test_a_conversation_reply_says_how_many_turns_were_dropped_and_whether_it_was_cut() -> None:
    raw = [{"generated_text": " Hello! ", "dropped_turns": 2, "cut": True}]
    assert TASKS["chat"].result.read(raw) == ChatReply("Hello!", dropped_turns=2, cut=True)
    chat_style = [{"generated_text": [{"role": "assistant", "content": "Hi there"}]}]
    assert TASKS["generate"].result.read(chat_style) == Texts(("Hi there",))


def test_output_of_the_wrong_shape_is_refused_rather_than_shown_with_holes() -> None:
    with pytest.raises(MalformedResult):
        TASKS["sentiment"].result.read([{"labels": ["a"], "scores": [1.0]}])
    with pytest.raises(MalformedResult):
        TASKS["summarize"].result.read(["just a string"])
    with pytest.raises(MalformedResult):
        TASKS["imagine"].result.read({"generated_text": "not a picture"})
    with pytest.raises(TypeError):
        TASKS["sentiment"].result.format(Texts(("wrong result for this row",)), "x")
