"""Inline mode: `@bot some text` offers the text's sentiment and a short continuation.

An inline query is one request: it passes the guards every model call passes
(`handlers.request.guards`), once for both of its tasks; each task then goes the
lifecycle's way (`serve_inline`) to an `InlineAnswer` that becomes one article.
"""

from __future__ import annotations

import asyncio
import html
import logging

from telegram import Update

from bot.errors import UserFacingError
from bot.tasks import TASKS, Output, Ranking, Texts
from bot.tasks.formatters import score_bar
from handlers.request.answers import Describe, InlineAnswer, InlineArticle
from handlers.request.context import BotContext
from handlers.request.guards import admitted
from handlers.request.lifecycle import serve_inline
from handlers.request.model_call import TaskRequest
from handlers.request.turn import Turn

log = logging.getLogger(__name__)

INLINE_MAX_NEW_TOKENS = 24
INLINE_CACHE_S = 30


def _describe_sentiment(turn: Turn) -> Describe:
    def describe(result: Output, text: str, markup: str) -> InlineArticle:
        assert isinstance(result, Ranking), "sentiment reads into a ranking"
        best = result.best
        title = turn.t("inline.sentiment", label=best.label, score=score_bar(best.score))
        return InlineArticle(html.unescape(title), text, f"{html.escape(text)}\n\n{markup}")

    return describe


def _describe_continuation(turn: Turn) -> Describe:
    def describe(result: Output, text: str, markup: str) -> InlineArticle:
        assert isinstance(result, Texts), "generation reads into texts"
        first = result.texts[0] if result.texts else ""
        return InlineArticle(html.unescape(turn.t("inline.generate")), first, markup)

    return describe


async def inline_query(update: Update, context: BotContext) -> None:
    """Answer with what could be computed; a failing task is left out, never an error."""
    query = update.inline_query
    assert query is not None
    turn = await Turn.open(update, context)
    text = query.query.strip()[: turn.services.settings.max_input_chars]
    if not text:
        await query.answer([], cache_time=INLINE_CACHE_S, is_personal=True)
        return
    sentiment = InlineAnswer(turn, text, _describe_sentiment(turn))
    continuation = InlineAnswer(turn, text, _describe_continuation(turn))
    request = TaskRequest(text=text, inputs=text)
    try:
        async with admitted(turn):
            ended = await asyncio.gather(
                serve_inline(turn, TASKS["sentiment"], request, sentiment, {}),
                serve_inline(
                    turn,
                    TASKS["generate"],
                    request,
                    continuation,
                    {"max_new_tokens": INLINE_MAX_NEW_TOKENS, "num_return_sequences": 1},
                ),
                return_exceptions=True,
            )
    except UserFacingError:  # refused by a guard: no results, and nothing cached
        await query.answer([], cache_time=0, is_personal=True)
        return
    for failure in (outcome for outcome in ended if isinstance(outcome, BaseException)):
        log.error("inline task failed", exc_info=failure)
    articles = [answer.article for answer in (sentiment, continuation) if answer.article]
    await query.answer(articles, cache_time=INLINE_CACHE_S, is_personal=True)
