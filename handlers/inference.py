"""The inference commands (/sentiment, /generate, …), all driven by the task registry."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from telegram import Update
from telegram.ext import ContextTypes

from bot.errors import Cancelled, StoreUnavailable, UserFacingError
from bot.tasks import OPTIONS, TaskSpec
from handlers import media
from handlers.downloads import ensure_downloaded
from handlers.parsing import parse_request
from handlers.streaming import StreamingReply
from handlers.turn import Handler, Turn
from models.store import ResolvedSettings

log = logging.getLogger(__name__)


async def resolve_settings(turn: Turn, spec: TaskSpec) -> tuple[ResolvedSettings, bool]:
    """This user's settings for the task, or the bot's defaults (flagged) if the store is down."""
    svc = turn.services
    default_model = svc.settings.default_models.get(spec.name, spec.default_model)
    chat_id = turn.chat.id if turn.in_group else None
    try:
        resolved = await svc.store.resolve(
            turn.owner_id,
            chat_id,
            spec.name,
            default_model=default_model,
            default_params=spec.default_params(),
        )
    except StoreUnavailable:
        log.warning("store unavailable; %s runs on the bot's defaults", spec.name)
        params = spec.default_params()
        return ResolvedSettings(default_model, "bot", params, dict.fromkeys(params, "bot")), True
    return resolved, False


async def prepare_call(
    turn: Turn,
    spec: TaskSpec,
    model_id: str,
    params: Mapping[str, Any],
    call_params: Mapping[str, Any],
    *,
    announce_download: bool = True,
) -> tuple[str, dict[str, Any]]:
    """Vet the model (downloading it first, with a status message) and build the call's kwargs.

    Returns what the pool loads (`vetted.source`) and the pipeline keyword arguments.
    """
    vetted = await turn.services.vetter.vet(spec.name, model_id)
    if announce_download:
        await ensure_downloaded(turn, vetted)
    return vetted.source, spec.call_kwargs(params, call_params)


async def wants_stream(turn: Turn, spec: TaskSpec) -> bool:
    """Streaming is on for streaming tasks unless the bot or this user turned it off."""
    if not (spec.streams and turn.services.settings.stream_generation):
        return False
    try:
        options = await turn.services.store.get_options(turn.owner_id)
    except StoreUnavailable:
        options = {}
    return bool(options.get("stream", OPTIONS["stream"].default))


async def run_task(turn: Turn, spec: TaskSpec) -> None:
    """Parse, resolve settings, vet the model, run it in the pool, and reply (streamed or not)."""
    svc = turn.services
    started = time.perf_counter()
    model_id = "?"
    stream: StreamingReply | None = None
    try:
        svc.limiter.check(turn.owner_id)
        transcript = await media.replied_transcript(turn, spec)
        request = parse_request(spec, turn.message, svc.settings.max_input_chars, transcript)
        resolved, fallback = await resolve_settings(turn, spec)
        model_id = request.model_override or resolved.model_id
        source, kwargs = await prepare_call(
            turn, spec, model_id, resolved.params, request.call_params
        )
        if await wants_stream(turn, spec):
            stream = await StreamingReply.open(turn, request.text)
        work = svc.pool.submit(
            spec.pipeline_task,
            source,
            request.inputs,
            kwargs,
            on_text=stream.update if stream else None,
        )
        async with svc.typing.during(turn.context.bot, turn.chat.id):
            result = await svc.running.run(turn.owner_id, work)
        markup = spec.formatter(result, request.text) or turn.t("result.no_entities")
        if fallback:
            markup += "\n\n" + turn.t("notice.store_fallback")
        if stream is not None:
            await stream.finish(markup)
        else:
            await turn.reply(markup)
    except UserFacingError as error:
        if stream is None:
            await turn.refuse(error)
        elif isinstance(error, Cancelled):
            await stream.stopped()
        else:
            await stream.failed(turn.t(error.key, **error.values))
        await log_usage(turn, spec, model_id, started, error.key)
        return
    except Exception:
        svc.metrics.command(spec.name, "crashed", time.perf_counter() - started)
        if stream is not None:
            await stream.failed(turn.t("error.generic"))
        raise
    await log_usage(turn, spec, model_id, started, None, len(request.text))


async def log_usage(
    turn: Turn,
    spec: TaskSpec,
    model_id: str,
    started: float,
    error: str | None,
    input_size: int | None = None,
) -> None:
    """Record the request for /stats and /metrics; losing a log row must never fail the reply."""
    seconds = time.perf_counter() - started
    outcome = error or "ok"
    turn.services.metrics.command(spec.name, outcome, seconds)
    log.info(
        "%s on %s: %s in %.0f ms (user %s)",
        spec.name,
        model_id,
        outcome,
        seconds * 1000,
        turn.owner_id,
        extra={
            "task": spec.name,
            "model": model_id,
            "latency_ms": round(seconds * 1000, 1),
            "outcome": outcome,
            "user_id": turn.owner_id,
            "chat_id": turn.chat.id,
        },
    )
    if log.isEnabledFor(logging.DEBUG):
        log.debug("text of that request: %r", turn.message.text or turn.message.caption)
    try:
        await turn.services.store.log_usage(
            user_id=turn.owner_id,
            chat_id=turn.chat.id,
            task=spec.name,
            model_id=model_id,
            latency_ms=seconds * 1000,
            ok=error is None,
            error=error,
            input_size=input_size,
        )
    except StoreUnavailable:
        log.warning("usage of %s not logged: store unavailable", spec.name)


def task_handler(spec: TaskSpec) -> Handler:
    """A PTB callback for one registry entry."""

    async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await run_task(await Turn.open(update, context), spec)

    handler.__name__ = handler.__qualname__ = f"{spec.name}_command"
    handler.__doc__ = f"/{spec.name}: run {spec.pipeline_task} on the given or replied-to text."
    return handler
