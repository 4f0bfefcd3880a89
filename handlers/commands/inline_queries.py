"""Inline mode: `@bot some text` offers the text's sentiment and a short continuation.

An inline query is one request: it passes the guards every model call passes
(`handlers.request.guards`), once for both of its tasks.
"""

from __future__ import annotations

import asyncio
import html
import logging
import uuid
from typing import Any

from telegram import InlineQueryResultArticle, InputTextMessageContent, Update
from telegram.constants import ParseMode

from bot.errors import UserFacingError
from bot.tasks import TASKS, TaskSpec
from bot.tasks.formatters import score_bar
from handlers.request.context import BotContext
from handlers.request.guards import admitted
from handlers.request.lifecycle import tracked
from handlers.request.model_call import TaskRequest, prepare_call, run_call
from handlers.request.turn import Turn

log = logging.getLogger(__name__)

INLINE_MAX_NEW_TOKENS = 24
INLINE_CACHE_S = 30


async def _run(turn: Turn, spec: TaskSpec, text: str, overrides: dict[str, Any]) -> Any:
    """One task of the inline answer through the request lifecycle; None when it failed."""
    async with tracked(turn, spec) as usage:
        request = TaskRequest(text=text, inputs=text)
        try:
            # No chat to show a download status in: a model not on disk yet loads in the pool.
            call = await prepare_call(
                turn, spec, request, usage, overrides=overrides, announce_download=False
            )
            return await run_call(turn, spec, call, request, usage)
        except UserFacingError as error:
            usage.error = error.key
    return None


def _article(title: str, description: str, markup: str) -> InlineQueryResultArticle:
    return InlineQueryResultArticle(
        id=uuid.uuid4().hex,
        title=title,
        description=description[:200],
        input_message_content=InputTextMessageContent(markup, parse_mode=ParseMode.HTML),
    )


async def inline_query(update: Update, context: BotContext) -> None:
    """Answer with what could be computed; a failing task is left out, never an error."""
    query = update.inline_query
    assert query is not None
    turn = await Turn.open(update, context)
    text = query.query.strip()[: turn.services.settings.max_input_chars]
    if not text:
        await query.answer([], cache_time=INLINE_CACHE_S, is_personal=True)
        return
    sentiment: Any | BaseException
    generated: Any | BaseException
    try:
        async with admitted(turn):
            sentiment, generated = await asyncio.gather(
                _run(turn, TASKS["sentiment"], text, {}),
                _run(
                    turn,
                    TASKS["generate"],
                    text,
                    {"max_new_tokens": INLINE_MAX_NEW_TOKENS, "num_return_sequences": 1},
                ),
                return_exceptions=True,
            )
    except UserFacingError:  # refused by a guard: no results, and nothing cached
        await query.answer([], cache_time=0, is_personal=True)
        return
    results = []
    if sentiment is not None and not isinstance(sentiment, BaseException):
        best = max(
            sentiment if isinstance(sentiment, list) else [sentiment], key=lambda r: r["score"]
        )
        title = turn.t("inline.sentiment", label=best["label"], score=score_bar(best["score"]))
        results.append(
            _article(
                html.unescape(title),
                text,
                f"{html.escape(text)}\n\n{TASKS['sentiment'].formatter(sentiment, text)}",
            )
        )
    if generated is not None and not isinstance(generated, BaseException):
        markup = TASKS["generate"].formatter(generated, text)
        first = (
            generated[0]["generated_text"]
            if isinstance(generated, list)
            else generated["generated_text"]
        )
        results.append(_article(html.unescape(turn.t("inline.generate")), first, markup))
    for failure in (r for r in (sentiment, generated) if isinstance(r, BaseException)):
        log.error("inline task failed", exc_info=failure)
    await query.answer(results, cache_time=INLINE_CACHE_S, is_personal=True)
