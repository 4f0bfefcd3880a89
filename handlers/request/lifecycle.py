"""The one request lifecycle every model command goes through, as one straight line.

The guards (`handlers.request.guards`), read the input (text, photo, sound or a
conversation's next turn, by the task's input kind), resolve settings, vet and
download the model, check the work, then hand the rest to one `PendingAnswer`
(`handlers.request.answers`): submit to the pool, show the answer (queued,
streamed, inline), then the input kind's after-answer step; the usage log and
the metrics count the outcome. Nothing else in `handlers/` repeats these steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

from telegram import Message

from bot.delivery.markup import plain_text
from bot.errors import StoreUnavailable, UserFacingError
from bot.tasks import OPTIONS, InputKind, Output, OutputKind, TaskSpec, cut_short
from bot.tasks.params import Value
from handlers.request.answers import (
    PendingAnswer,
    PictureAnswer,
    QueuedAnswer,
    RepliedAnswer,
    StreamedAnswer,
    VoiceAnswer,
)
from handlers.request.chat_history import conversation_notices, read_chat, remember_turn
from handlers.request.guards import admitted
from handlers.request.media_input import read_media, replied_transcript
from handlers.request.model_call import (
    PreparedCall,
    TaskRequest,
    Usage,
    check_work,
    prepare_call,
    run_call,
)
from handlers.request.parsing import InputLimits, parse_request
from handlers.request.streaming import StreamMode
from handlers.request.turn import Turn
from handlers.request.voice_replies import speak_answer

log = logging.getLogger(__name__)


async def read_text(turn: Turn, spec: TaskSpec, usage: Usage) -> TaskRequest:
    """The command's words, or the replied message's text (a voice note's transcript)."""
    transcript = await replied_transcript(turn, spec, usage)
    limits = InputLimits.from_settings(turn.services.settings)
    return parse_request(spec, turn.message, limits, transcript)


READERS: dict[InputKind, Callable[[Turn, TaskSpec, Usage], Awaitable[TaskRequest]]] = {
    "text": read_text,
    "image": read_media,
    "audio": read_media,
    "chat": read_chat,
}


async def stream_mode(turn: Turn, spec: TaskSpec) -> StreamMode | None:
    """How this answer streams: off for tasks that do not stream, when the bot or this person
    turned it off; drafts in a private chat unless the person chose edits; edits elsewhere
    (drafts exist in private chats only)."""
    if not (spec.streams and turn.services.settings.stream_generation):
        return None
    try:
        options = await turn.services.store.preferences.get_options(turn.owner_id)
    except StoreUnavailable:
        options = {}
    chosen = OPTIONS["stream"].coerce(options.get("stream", OPTIONS["stream"].default))
    if chosen == "off":
        return None
    return "draft" if chosen in ("auto", "draft") and turn.in_private else "edit"


@asynccontextmanager
async def tracked(turn: Turn, spec: TaskSpec) -> AsyncIterator[Usage]:
    """Time one request and record it: the usage log, the metrics and one log line.

    An error the person was told about (`usage.error`) is logged like a
    success; an unexpected exception is counted as a crash and goes on to the
    error handler.
    """
    started = time.perf_counter()
    usage = Usage()
    try:
        yield usage
    except Exception:
        turn.services.metrics.command(
            spec.name, usage.model_id, "crashed", time.perf_counter() - started
        )
        raise
    await log_usage(turn, spec, usage, time.perf_counter() - started)


async def serve_command(turn: Turn, spec: TaskSpec) -> None:
    """Run one registry command for one person, from their message to the reply.

    Top to bottom: the guards, the input, the settings and the vetted model, a
    work check; then the answer (`answer_request`). A refusal on the way is a
    plain reply.
    """
    async with tracked(turn, spec) as usage:
        try:
            async with admitted(turn):
                request = await READERS[spec.input_kind](turn, spec, usage)
                call = await prepare_call(turn, spec, request, usage)
                check_work(spec, call, request, turn.services.settings)
                answer = await open_answer(turn, spec, request)
                await answer_request(turn, spec, request, call, usage, answer)
        except UserFacingError as error:
            usage.error = error.key
            await RepliedAnswer(turn).fail(turn.t(error.key, **error.values), error)


async def serve_inline(
    turn: Turn,
    spec: TaskSpec,
    request: TaskRequest,
    answer: PendingAnswer,
    overrides: Mapping[str, Value],
) -> None:
    """One article of an inline query, by the same steps as a command; the query passed
    the guards once for all its articles. No chat shows a download: a model not on disk
    yet loads in the pool."""
    async with tracked(turn, spec) as usage:
        try:
            call = await prepare_call(
                turn, spec, request, usage, overrides=overrides, announce_download=False
            )
            check_work(spec, call, request, turn.services.settings)
            await answer_request(turn, spec, request, call, usage, answer)
        except UserFacingError as error:
            usage.error = error.key
            await answer.fail(turn.t(error.key, **error.values), error)


async def answer_request(
    turn: Turn,
    spec: TaskSpec,
    request: TaskRequest,
    call: PreparedCall,
    usage: Usage,
    answer: PendingAnswer,
) -> None:
    """From the pool to the person: the `PendingAnswer` sees the request through to exactly
    one ending, then the after-answer step of its input kind (a conversation stores the turn
    as the person saw it, a stopped one as far as it got)."""
    after = AFTER_ANSWER.get(spec.input_kind, nothing_after)
    try:
        async with answer.watching() as caller:
            result = await run_call(
                turn, spec, call, request, usage, on_text=answer.on_text, caller=caller
            )
        text = spec.result.format(result, request.text)
        empty = turn.t(spec.empty_result) if spec.empty_result else ""
        markup = (text or empty) + "".join(
            f"\n\n{turn.t(key)}" for key in notices(spec, request, call, result)
        )
        shown = await answer.finish(markup, result)
        await after(turn, request, plain_text(text), shown, result)
    except UserFacingError as error:
        usage.error = error.key
        # A stream stopped, cancelled or timed out after it showed text was work done.
        usage.charged = usage.charged or bool(answer.shown)
        shown = await answer.fail(turn.t(error.key, **error.values), error)
        await after(turn, request, answer.shown, shown, None)
    except Exception:
        await answer.crash(turn.t("error.generic"))
        raise


# Answers that are files, by the registry's output kind; text answers stream or queue.
FILE_ANSWERS: dict[OutputKind, Callable[[Turn], PendingAnswer]] = {
    "picture": PictureAnswer,
    "voice": VoiceAnswer,
}


async def open_answer(turn: Turn, spec: TaskSpec, request: TaskRequest) -> PendingAnswer:
    """A file answer for a picture or a voice note; text streamed where the task streams and
    the person did not turn it off, else queued; an answer that continues a conversation is
    never shared with others in a busy group."""
    file_answer = FILE_ANSWERS.get(spec.output_kind)
    if file_answer is not None:
        return file_answer(turn)
    mode = await stream_mode(turn, spec)
    if mode is None:
        return QueuedAnswer(turn, shareable=request.conversation is None)
    return await StreamedAnswer.open(turn, request.text, mode)


def notices(
    spec: TaskSpec, request: TaskRequest, call: PreparedCall, result: Output
) -> list[str]:
    """Message keys said under the answer: the conversation's, and that the bot's defaults
    stood in for settings it could not read."""
    keys = NOTICES.get(spec.input_kind, no_notices)(request, result)
    if cut_short(result):
        keys.append("result.engine_cut")
    return [*keys, "notice.store_fallback"] if call.store_fallback else keys


# (turn, request, the answer as plain text, the message shown, the result: None when the
# answer stopped or failed on the way).
AfterAnswer = Callable[[Turn, TaskRequest, str, Message | None, Output | None], Awaitable[None]]


async def nothing_after(
    turn: Turn, request: TaskRequest, answer: str, shown: Message | None, result: Output | None
) -> None:
    """Most answers need nothing once shown."""


async def remember_conversation_turn(
    turn: Turn, request: TaskRequest, answer: str, shown: Message | None, result: Output | None
) -> None:
    """A conversation keeps what the person saw: the whole answer, or what a stop left; a
    whole answer is read aloud too for people who turned voice_replies on."""
    conversation = request.conversation
    assert conversation is not None, "the chat reader always says which conversation"
    if answer or result is not None:
        await remember_turn(turn, conversation, answer, shown, result)
    if result is not None:
        await speak_answer(turn, answer, shown)


def no_notices(request: TaskRequest, result: Output) -> list[str]:
    return []


def conversation_turn_notices(request: TaskRequest, result: Output) -> list[str]:
    conversation = request.conversation
    assert conversation is not None, "the chat reader always says which conversation"
    return conversation_notices(conversation, result)


# What an input kind does besides the answer itself; every other kind does nothing more.
AFTER_ANSWER: dict[InputKind, AfterAnswer] = {"chat": remember_conversation_turn}
NOTICES: dict[InputKind, Callable[[TaskRequest, Output], list[str]]] = {
    "chat": conversation_turn_notices
}


async def log_usage(turn: Turn, spec: TaskSpec, usage: Usage, seconds: float) -> None:
    """Record the request for /stats and /metrics; losing a log row must never fail the reply."""
    outcome = usage.error or "ok"
    turn.services.metrics.command(spec.name, usage.model_id, outcome, seconds)
    log.info(
        "%s on %s: %s in %.0f ms (user %s)",
        spec.name,
        usage.model_id,
        outcome,
        seconds * 1000,
        turn.owner_id,
        extra={
            "task": spec.name,
            "model": usage.model_id,
            "latency_ms": round(seconds * 1000, 1),
            "outcome": outcome,
            "user_id": turn.owner_id,
            "chat_id": turn.chat_id,
        },
    )
    message = turn.update.effective_message
    if message is not None and log.isEnabledFor(logging.DEBUG):
        log.debug("text of that request: %r", message.text or message.caption)
    try:
        await turn.services.store.usage.log(
            user_id=turn.owner_id,
            chat_id=turn.chat_id,
            task=spec.name,
            model_id=usage.model_id,
            latency_ms=seconds * 1000,
            ok=usage.error is None,
            charged=usage.error is None or usage.charged,
            error=usage.error,
            input_size=usage.size,
        )
    except StoreUnavailable:
        log.warning("usage of %s not logged: store unavailable", spec.name)
