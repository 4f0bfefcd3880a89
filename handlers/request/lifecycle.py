"""The one request lifecycle every model command goes through.

Rate limit, read the input (text, photo or sound, by the task's input kind),
resolve settings, vet and download the model, submit to the pool, reply or
stream, then log usage and count the outcome. Text, media and inline commands
all use these steps; nothing else in `handlers/` repeats them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from telegram import Message

from bot.delivery.markup import plain_text
from bot.errors import Cancelled, StoreUnavailable, UserFacingError
from bot.tasks import OPTIONS, InputKind, TaskSpec
from handlers.request.chat_history import read_chat
from handlers.request.media_input import read_media, replied_transcript
from handlers.request.model_call import (
    Memory,
    TaskRequest,
    Usage,
    check_work,
    prepare_call,
    run_call,
)
from handlers.request.parsing import InputLimits, parse_request
from handlers.request.queue_status import QueueStatus
from handlers.request.quota import check_quota
from handlers.request.streaming import StreamingReply, StreamMode
from handlers.request.turn import Turn

log = logging.getLogger(__name__)


async def read_text(turn: Turn, spec: TaskSpec) -> TaskRequest:
    """The command's words, or the replied message's text (a voice note's transcript)."""
    transcript = await replied_transcript(turn, spec)
    limits = InputLimits.from_settings(turn.services.settings)
    return parse_request(spec, turn.message, limits, transcript)


READERS: dict[InputKind, Callable[[Turn, TaskSpec], Awaitable[TaskRequest]]] = {
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
    """Run one registry command for one person, from their message to the reply."""
    svc = turn.services
    async with tracked(turn, spec) as usage:
        stream: StreamingReply | None = None
        status: QueueStatus | None = None
        memory: Memory | None = None
        try:
            svc.limiter.check(turn.owner_id)
            await check_quota(turn)
            with svc.running.admitted(turn.owner_id, svc.settings.max_in_flight_per_user):
                request = await READERS[spec.input_kind](turn, spec)
                memory = request.memory
                call = await prepare_call(turn, spec, request, usage)
                check_work(spec, call, request, svc.settings)
                mode = await stream_mode(turn, spec)
                if mode is not None:
                    stream = await StreamingReply.open(turn, request.text, mode)
                    result = await run_call(turn, spec, call, request, usage, on_text=stream.update)
                else:
                    status = QueueStatus(turn)
                    async with status.watching() as caller:
                        result = await run_call(turn, spec, call, request, usage, caller=caller)
            answer = spec.formatter(result, request.text)
            markup = answer or turn.t(spec.empty_result)
            notices = memory.notices(result) if memory is not None else []
            if call.store_fallback:
                notices.append("notice.store_fallback")
            markup += "".join(f"\n\n{turn.t(key)}" for key in notices)
            if stream is not None:
                await stream.finish(markup)
            shown = (
                stream.message
                if stream is not None
                else await reply_in_place(turn, status, markup, shareable=memory is None)
            )
            if memory is not None:
                await memory.remember(plain_text(answer), shown, stopped=False)
        except UserFacingError as error:
            usage.error = error.key
            if stream is None:
                await reply_in_place(
                    turn, status, turn.t(error.key, **error.values), shareable=True
                )
            elif isinstance(error, Cancelled):
                await stream.stopped()
            else:
                await stream.failed(turn.t(error.key, **error.values))
            if stream is not None and memory is not None and stream.shown:
                await memory.remember(stream.shown, stream.message, stopped=True)
        except Exception:
            if stream is not None:
                await stream.failed(turn.t("error.generic"))
            raise


async def reply_in_place(
    turn: Turn, status: QueueStatus | None, markup: str, *, shareable: bool
) -> Message:
    """Reply, in place of the request's queue status line if it got one; an answer that is
    not part of a conversation may share a message with others in a busy group."""
    if status is not None:
        return await status.replace(markup, shareable=shareable)
    return await turn.reply(markup, shareable=shareable)


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
            error=usage.error,
            input_size=usage.size,
        )
    except StoreUnavailable:
        log.warning("usage of %s not logged: store unavailable", spec.name)
