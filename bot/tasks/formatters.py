"""Turning pipeline results into replies a person reads.

Every formatter returns Telegram HTML with every piece of model output and
user text escaped; each task row of the registry names its formatter.
Nothing here knows about Telegram's API, only its markup.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

_BAR_WIDTH = 10


def score_bar(score: float) -> str:
    """A ten-cell bar and a percentage: readable at a glance on any phone."""
    score = min(max(float(score), 0.0), 1.0)
    filled = round(score * _BAR_WIDTH)
    return f"{'█' * filled}{'░' * (_BAR_WIDTH - filled)} {score * 100:.0f}%"


def _label(text: object) -> str:
    return html.escape(str(text).strip())


def _scored_lines(pairs: Sequence[tuple[object, float]]) -> str:
    width = max((len(str(label)) for label, _ in pairs), default=0)
    return "\n".join(
        f"<code>{_label(label).ljust(width)}</code> {score_bar(score)}" for label, score in pairs
    )


def format_classification(result: Any, text: str) -> str:
    """Sentiment and other labels, best first, each with a score bar."""
    items = result if isinstance(result, list) else [result]
    ranked = sorted(items, key=lambda item: item["score"], reverse=True)
    best = ranked[0]
    return f"<b>{_label(best['label'])}</b>\n" + _scored_lines(
        [(item["label"], item["score"]) for item in ranked]
    )


def format_generation(result: Any, text: str) -> str:
    """Each generated sequence as a quote, with the user's prompt in bold."""
    items = result if isinstance(result, list) else [result]
    quotes = []
    for item in items:
        generated = item["generated_text"]
        if isinstance(generated, list):  # chat-style output: the last message is the reply
            generated = generated[-1]["content"]
        if text and generated.startswith(text):
            body = f"<b>{html.escape(text)}</b>{html.escape(generated[len(text) :])}"
        else:
            body = html.escape(generated)
        quotes.append(f"<blockquote>{body}</blockquote>")
    return "\n".join(quotes)


def format_chat(result: Any, text: str) -> str:
    """The model's reply, as the model wrote it (escaped); empty when it said nothing."""
    items = result if isinstance(result, list) else [result]
    return html.escape(str(items[0]["generated_text"]).strip()) if items else ""


def _text_outputs(result: Any, key: str) -> list[str]:
    items = result if isinstance(result, list) else [result]
    flat: list[str] = []
    for item in items:
        flat.extend(entry[key] for entry in (item if isinstance(item, list) else [item]))
    return flat


def format_summary(result: Any, text: str) -> str:
    return "\n\n".join(html.escape(out.strip()) for out in _text_outputs(result, "summary_text"))


def format_translation(result: Any, text: str) -> str:
    return "\n\n".join(
        html.escape(out.strip()) for out in _text_outputs(result, "translation_text")
    )


def format_caption(result: Any, text: str) -> str:
    """What a captioning model says it sees; empty when it said nothing."""
    captions = [out.strip() for out in _text_outputs(result, "generated_text")]
    return "\n".join(html.escape(caption) for caption in captions if caption)


def format_transcript(result: Any, text: str) -> str:
    """The words heard, as a quote; empty when there were none."""
    words = str(result.get("text", "") if isinstance(result, dict) else result).strip()
    return f"<blockquote>{html.escape(words)}</blockquote>" if words else ""


def format_entities(result: Any, text: str) -> str:
    """The text with each entity in bold and its type after it; empty when none were found."""
    entities = sorted((e for e in result if e.get("start") is not None), key=lambda e: e["start"])
    if not entities:
        return ""
    parts, cursor = [], 0
    for entity in entities:
        start, end = entity["start"], entity["end"]
        if start < cursor:
            continue
        kind = entity.get("entity_group") or entity.get("entity", "")
        kind = re.sub(r"^[BI]-", "", kind)
        parts.append(html.escape(text[cursor:start]))
        parts.append(f"<b>{html.escape(text[start:end])}</b><i>[{html.escape(kind)}]</i>")
        cursor = end
    parts.append(html.escape(text[cursor:]))
    return "".join(parts)


def format_fill_mask(result: Any, text: str) -> str:
    """The best completion in full, then the candidates for the gap with their scores."""
    items = result if isinstance(result, list) else [result]
    if items and isinstance(items[0], list):  # several masks: show the first gap's candidates
        items = items[0]
    best = items[0]
    return f"{html.escape(best['sequence'])}\n\n" + _scored_lines(
        [(item["token_str"], item["score"]) for item in items]
    )


def format_zero_shot(result: Any, text: str) -> str:
    return f"<b>{_label(result['labels'][0])}</b>\n" + _scored_lines(
        list(zip(result["labels"], result["scores"], strict=True))
    )


def format_answer(result: Any, text: str) -> str:
    answer = result[0] if isinstance(result, list) else result
    return f"<b>{html.escape(answer['answer'].strip())}</b> · {score_bar(answer['score'])}"


# A photo's caption may be 1,024 characters (after entities are parsed); the settings line
# and the markup around the prompt need the rest.
_CAPTION_PROMPT_CHARS = 900


def format_picture(result: Any, text: str) -> str:
    """A picture's caption: the prompt it was drawn from, then what draws it again."""
    prompt = text.strip()
    if len(prompt) > _CAPTION_PROMPT_CHARS:
        prompt = prompt[: _CAPTION_PROMPT_CHARS - 1] + "…"
    steps = "1 step" if result.steps == 1 else f"{result.steps} steps"
    details = f"{result.width}×{result.height} · {steps} · seed {result.seed}"
    return f"{html.escape(prompt)}\n<i>{details}</i>" if prompt else f"<i>{details}</i>"


def format_voice(result: Any, text: str) -> str:
    """A voice note needs no caption: Telegram shows its length and plays it."""
    return ""
