"""Which voice reads a text, and how people write a picture's size."""

from __future__ import annotations

import pytest

from bot.errors import InvalidParamValue
from bot.tasks import PARAMS, SPEECH_VOICES, speech_language, voice_model


@pytest.mark.parametrize(
    ("text", "fallback", "language"),
    [
        ("今天天气很好", "en", "zh"),
        ("The weather is fine today", "zh", "en"),
        ("I love 北京", "zh", "en"),
        ("我爱 NY", "en", "zh"),
        ("1234 🙂", "zh", "zh"),
        ("1234 🙂", "en", "en"),
        ("1234", "fr", "en"),
    ],
)
def test_the_voice_language_follows_the_script_of_the_text_then_the_persons_language(
    text: str, fallback: str, language: str
) -> None:
    assert speech_language(text, fallback) == language


def test_an_operator_replaces_a_voice_per_language() -> None:
    assert voice_model("en", {}) == SPEECH_VOICES["en"]
    assert voice_model("zh", {}) == SPEECH_VOICES["zh"]
    assert voice_model("en", {"say": "acme/english"}) == "acme/english"
    assert voice_model("zh", {"say": "acme/english", "say.zh": "acme/mandarin"}) == "acme/mandarin"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("512", "512x512"),
        ("768x512", "768x512"),
        ("768×512", "768x512"),
        ("1024*1024", "1024x1024"),
    ],
)
def test_a_size_is_written_as_width_x_height_or_one_side_of_a_square(
    typed: str, stored: str
) -> None:
    assert PARAMS["size"].coerce(typed) == stored


def test_a_size_outside_the_list_says_which_sizes_there_are() -> None:
    with pytest.raises(InvalidParamValue) as refused:
        PARAMS["size"].coerce("500x500")
    assert "512x512" in refused.value.values["allowed"]
    with pytest.raises(InvalidParamValue):
        PARAMS["steps"].coerce(51)
    assert PARAMS["seed"].coerce("-1") == -1
