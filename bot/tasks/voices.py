"""Which voice reads a text aloud: a default voice per language, the language from the text.

/say answers in the voice the person chose (`/model say …`); otherwise the
text picks it: mostly Chinese, the Chinese voice; mostly Latin letters, the
English one; neither (digits, emoji, another script), the person's /lang. An operator replaces a voice with `default_models`
(`{"say": …}` for English, `{"say.zh": …}` for Chinese).
"""

from __future__ import annotations

from collections.abc import Mapping

# Both safetensors VITS checkpoints that transformers runs as they are (no phonemizer):
# Meta's MMS English voice (CC-BY-NC 4.0), and a Mandarin VITS trained on THCHS-30
# (Apache-2.0) that reads pinyin with tone marks, which the speech runner writes for it.
SPEECH_VOICES: dict[str, str] = {
    "en": "facebook/mms-tts-eng",
    "zh": "BricksDisplay/vits-cmn",
}
DEFAULT_VOICE_LANGUAGE = "en"


def is_cjk(char: str) -> bool:
    """Han characters (the unified block and its first extension) and CJK punctuation."""
    code = ord(char)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x3000 <= code <= 0x303F


def speech_language(text: str, fallback: str) -> str:
    """`zh` or `en`, whichever script says more of `text`; `fallback` on a tie.

    A Chinese character is a syllable, which Latin letters spell in two or three, so it
    counts as two letters: "I love 北京" is English, "我爱 NY" Chinese.
    """
    han = 2 * sum(1 for char in text if is_cjk(char))
    latin = sum(1 for char in text if char.isascii() and char.isalpha())
    if han == latin:
        return fallback if fallback in SPEECH_VOICES else DEFAULT_VOICE_LANGUAGE
    return "zh" if han > latin else "en"


def voice_model(language: str, default_models: Mapping[str, str]) -> str:
    """The model that speaks `language` unless the person chose one: the operator's
    override (`say` for English, `say.<lang>` for the others), else the registry's voice."""
    key = "say" if language == DEFAULT_VOICE_LANGUAGE else f"say.{language}"
    return default_models.get(key) or SPEECH_VOICES.get(language) or SPEECH_VOICES["en"]


def voice_for(text: str, language: str, default_models: Mapping[str, str]) -> str:
    """The voice that reads `text` when the person chose none: by the text's script, else
    by their language (`speech_language`)."""
    return voice_model(speech_language(text, language), default_models)
