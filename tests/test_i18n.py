"""Both catalogs say everything, with the same placeholders, and never break the markup."""

from __future__ import annotations

import string

import pytest

from bot.i18n import CATALOGS, EN, pick_language, t


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
