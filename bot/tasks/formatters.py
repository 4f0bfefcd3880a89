"""Turning pipeline results into replies a person reads.

Every formatter takes a typed result (`bot.tasks.outputs`) and the text the
reply is shown against, and returns Telegram HTML with every piece of model
output and user text escaped; each task row of the registry names its formatter.
Nothing here knows about Telegram's API, only its markup.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from bot.tasks.outputs import (
    Answer,
    ChatReply,
    Completions,
    Entities,
    Picture,
    Ranking,
    Scored,
    Texts,
    Transcript,
    VoiceNote,
)

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


def _ranked_lines(ranking: Sequence[Scored]) -> str:
    return _scored_lines([(item.label, item.score) for item in ranking])


def format_ranking(result: Ranking, text: str) -> str:
    """Sentiment, zero-shot and photo labels, best first, each with a score bar."""
    return f"<b>{_label(result.best.label)}</b>\n" + _ranked_lines(result.items)


def format_generation(result: Texts, text: str) -> str:
    """Each generated sequence as a quote, with the user's prompt in bold."""
    quotes = []
    for generated in result.texts:
        if text and generated.startswith(text):
            body = f"<b>{html.escape(text)}</b>{html.escape(generated[len(text) :])}"
        else:
            body = html.escape(generated)
        quotes.append(f"<blockquote>{body}</blockquote>")
    return "\n".join(quotes)


def format_chat(result: ChatReply, text: str) -> str:
    """The model's reply, as the model wrote it (escaped); empty when it said nothing."""
    return html.escape(result.text)


def format_paragraphs(result: Texts, text: str) -> str:
    """A summary or a translation: each output its own paragraph."""
    return "\n\n".join(html.escape(out.strip()) for out in result.texts)


def format_caption(result: Texts, text: str) -> str:
    """What a captioning model says it sees; empty when it said nothing."""
    captions = [out.strip() for out in result.texts]
    return "\n".join(html.escape(caption) for caption in captions if caption)


def format_transcript(result: Transcript, text: str) -> str:
    """The words heard, as a quote; empty when there were none."""
    return f"<blockquote>{html.escape(result.text)}</blockquote>" if result.text else ""


def format_entities(result: Entities, text: str) -> str:
    """The text with each entity in bold and its type after it; empty when none were found."""
    if not result.found:
        return ""
    parts, cursor = [], 0
    for entity in result.found:
        parts.append(html.escape(text[cursor : entity.start]))
        parts.append(
            f"<b>{html.escape(text[entity.start : entity.end])}</b>"
            f"<i>[{html.escape(entity.kind)}]</i>"
        )
        cursor = entity.end
    parts.append(html.escape(text[cursor:]))
    return "".join(parts)


def format_fill_mask(result: Completions, text: str) -> str:
    """The best completion in full, then the candidates for the gap with their scores."""
    return f"{html.escape(result.sequence)}\n\n" + _ranked_lines(result.candidates)


def format_answer(result: Answer, text: str) -> str:
    return f"<b>{html.escape(result.text)}</b> · {score_bar(result.score)}"


# A photo's caption may be 1,024 characters (after entities are parsed); the settings line
# and the markup around the prompt need the rest.
_CAPTION_PROMPT_CHARS = 900


def format_picture(result: Picture, text: str) -> str:
    """A picture's caption: the prompt it was drawn from, then what draws it again."""
    prompt = text.strip()
    if len(prompt) > _CAPTION_PROMPT_CHARS:
        prompt = prompt[: _CAPTION_PROMPT_CHARS - 1] + "…"
    steps = "1 step" if result.steps == 1 else f"{result.steps} steps"
    details = f"{result.width}×{result.height} · {steps} · seed {result.seed}"
    return f"{html.escape(prompt)}\n<i>{details}</i>" if prompt else f"<i>{details}</i>"


def format_voice(result: VoiceNote, text: str) -> str:
    """A voice note needs no caption: Telegram shows its length and plays it."""
    return ""
