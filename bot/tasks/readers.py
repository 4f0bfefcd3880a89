"""Reading a pipeline's own output into the typed results of `bot.tasks.outputs`.

transformers' pipelines answer in dicts and lists whose shape depends on the
task, the call and the number of inputs (one input may give a dict, a list of
dicts, or a list of lists); the engine's own runners and the remote engines
answer in the same shapes, so that any of them can stand in for another. Each
registry row names its reader, and the pool applies it to every result before
it leaves the engine: nothing above reads a key.

A result that is not shaped as its task's pipeline answers raises
`MalformedResult` (an engine's bug, or a remote engine speaking another API),
which the bot reports as an engine failure rather than a reply with holes in it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.tasks.outputs import (
    Answer,
    ChatReply,
    Completions,
    Entities,
    Entity,
    Picture,
    Ranking,
    Scored,
    Texts,
    Transcript,
    VoiceNote,
)


class MalformedResult(ValueError):
    """A model's output does not have the shape its task's pipeline gives."""


def _rows(raw: object) -> list[Mapping[str, Any]]:
    """One input's result as the list of its dicts: a dict, a list of them, or a list of
    lists (the first list: one input's worth, as a batch of one gives)."""
    items: object = raw
    if isinstance(items, Sequence) and not isinstance(items, str) and items:
        first = items[0]
        if isinstance(first, Sequence) and not isinstance(first, str):
            items = first
    found = list(items) if isinstance(items, Sequence) and not isinstance(items, str) else [items]
    rows = [row for row in found if isinstance(row, Mapping)]
    if len(rows) != len(found):
        raise MalformedResult(f"expected pipeline dicts, got {type(raw).__name__}")
    return rows


def _field(row: Mapping[str, Any], key: str) -> Any:
    try:
        return row[key]
    except KeyError:
        raise MalformedResult(f"a pipeline result without {key!r}") from None


def _first(raw: object, what: str) -> Mapping[str, Any]:
    rows = _rows(raw)
    if not rows:
        raise MalformedResult(f"a {what} result without any")
    return rows[0]


def _ranked(pairs: Sequence[tuple[Any, Any]]) -> Ranking:
    scored = [Scored(str(label).strip(), float(score)) for label, score in pairs]
    if not scored:
        raise MalformedResult("a classification without labels")
    return Ranking(tuple(sorted(scored, key=lambda item: item.score, reverse=True)))


def read_ranking(raw: object) -> Ranking:
    """text-, image- and zero-shot image classification: `[{label, score}, …]`."""
    return _ranked([(_field(row, "label"), _field(row, "score")) for row in _rows(raw)])


def read_zero_shot(raw: object) -> Ranking:
    """zero-shot text classification: `{sequence, labels, scores}`."""
    row = _first(raw, "zero-shot")
    labels, scores = _field(row, "labels"), _field(row, "scores")
    return _ranked(list(zip(labels, scores, strict=True)))


def _texts(raw: object, key: str) -> tuple[str, ...]:
    texts = []
    for row in _rows(raw):
        text = _field(row, key)
        if isinstance(text, list):  # chat-style output: the last message is the reply
            text = text[-1]["content"] if text else ""
        texts.append(str(text))
    return tuple(texts)


def _cut(raw: object) -> bool:
    return any(bool(row.get("cut")) for row in _rows(raw))


def read_generation(raw: object) -> Texts:
    """text-generation: `[{generated_text}, …]`, one per returned sequence."""
    return Texts(_texts(raw, "generated_text"), cut=_cut(raw))


def read_chat(raw: object) -> ChatReply:
    """A conversation turn: `{generated_text, dropped_turns}` (and `cut` from an engine)."""
    rows = _rows(raw)
    if not rows:
        return ChatReply("")
    [text, *_] = _texts(rows, "generated_text")
    return ChatReply(
        text.strip(), dropped_turns=int(rows[0].get("dropped_turns", 0)), cut=_cut(rows)
    )


def read_summary(raw: object) -> Texts:
    return Texts(_texts(raw, "summary_text"))


def read_translation(raw: object) -> Texts:
    return Texts(_texts(raw, "translation_text"))


def read_caption(raw: object) -> Texts:
    """image-to-text: `[{generated_text}]`."""
    return Texts(_texts(raw, "generated_text"))


def read_transcript(raw: object) -> Transcript:
    """automatic-speech-recognition: `{text}` (a bare string from some runners)."""
    if isinstance(raw, str):
        return Transcript(raw.strip())
    rows = _rows(raw)
    return Transcript(str(rows[0].get("text", "")).strip() if rows else "")


_IOB = re.compile(r"^[BI]-")


def read_entities(raw: object) -> Entities:
    """token-classification, aggregated: `[{entity_group, start, end, …}]` (or `entity`
    per token); spans without offsets are dropped, overlaps keep the first."""
    rows = _rows(raw)
    spans = sorted(
        (
            Entity(
                int(row["start"]),
                int(row["end"]),
                _IOB.sub("", str(row.get("entity_group") or row.get("entity", ""))),
            )
            for row in rows
            if row.get("start") is not None and row.get("end") is not None
        ),
        key=lambda entity: entity.start,
    )
    kept: list[Entity] = []
    for entity in spans:
        if not kept or entity.start >= kept[-1].end:
            kept.append(entity)
    return Entities(tuple(kept))


def read_fill_mask(raw: object) -> Completions:
    """fill-mask: `[{sequence, token_str, score}, …]`, best first (several gaps: the first's)."""
    rows = _rows(raw)
    first = _first(rows, "fill-mask")
    candidates = [Scored(str(_field(row, "token_str")), float(_field(row, "score"))) for row in rows]
    return Completions(str(_field(first, "sequence")), tuple(candidates))


def read_answer(raw: object) -> Answer:
    """question-answering: `{answer, score, start, end}` (the best, when several)."""
    best = _first(raw, "question-answering")
    return Answer(str(_field(best, "answer")).strip(), float(_field(best, "score")))


def read_picture(raw: object) -> Picture:
    """The engine's picture runner makes a `Picture` itself (one per request)."""
    if not isinstance(raw, Picture):
        raise MalformedResult(f"expected a picture, got {type(raw).__name__}")
    return raw


def read_voice(raw: object) -> VoiceNote:
    """The engine's speech runner makes a `VoiceNote` itself (one per request)."""
    if not isinstance(raw, VoiceNote):
        raise MalformedResult(f"expected a voice note, got {type(raw).__name__}")
    return raw
