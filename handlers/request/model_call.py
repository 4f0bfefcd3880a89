"""One model call for one person: their settings, the vetted model, and the pool.

Every command that runs a model (text, photo, voice, inline, and the
transcription behind a text command replying to a voice note) goes through
`prepare_call` then `run_call`; the request lifecycle around them (limits,
replies, usage log) lives in `handlers.request.lifecycle`.
"""

from __future__ import annotations

import contextlib
import html
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings
from bot.delivery.replies import edit_html
from bot.engine import Caller, ModelInput
from bot.errors import TooMuchWork
from bot.hub import ThrottledStatus, VettedModel
from bot.tasks import Output, TaskSpec
from bot.tasks.params import Value
from handlers.request.guards import require_admitted
from handlers.request.turn import Turn
from models.database import or_default
from models.preference import ResolvedSettings

log = logging.getLogger(__name__)

TextCallback = Callable[[str], None]


@dataclass(frozen=True)
class ConversationTurn:
    """Which conversation a chat message continues, and what to store once it is answered."""

    conversation_id: int
    question: str
    question_message_id: int | None
    # Whether the person was already told that the oldest turns no longer fit.
    trim_noticed: bool
    # The message replied to another member's answer: it goes on with the person's own.
    replied_elsewhere: bool = False
    # The photo this turn is about (Telegram's file_id), stored with the question.
    image_file_id: str | None = None


@dataclass(frozen=True)
class TaskRequest:
    """What one command asks of the pool, and the text its reply is shown against.

    `load`, when set, produces the inputs once the model has passed vetting
    (a photo or voice note is only downloaded for a model that may run);
    `conversation`, set by the chat reader, says which conversation the answer
    continues: the lifecycle stores the turn once it is shown.
    """

    text: str
    inputs: ModelInput | None = None
    call_params: dict[str, Any] = field(default_factory=dict)
    model_override: str | None = None
    load: Callable[[], Awaitable[ModelInput]] | None = None
    conversation: ConversationTurn | None = None

    async def model_input(self) -> ModelInput:
        """What the model is given: the inputs, loaded first where they must be."""
        if self.load is not None:
            return await self.load()
        assert self.inputs is not None, "a request carries its inputs or a way to load them"
        return self.inputs


@dataclass
class Usage:
    """What the usage log records of one request: never its content.

    `charged`: a model did work the person got before the request failed (a stream
    that showed text, a voice note transcribed for it), so the quota counts it anyway.
    """

    model_id: str = "?"
    size: int | None = None
    error: str | None = None
    charged: bool = False


@dataclass(frozen=True)
class PreparedCall:
    """A vetted model and the keyword arguments of its call."""

    model_id: str
    source: str
    kwargs: dict[str, Any]
    store_fallback: bool


async def resolve_settings(turn: Turn, spec: TaskSpec) -> tuple[ResolvedSettings, bool]:
    """This user's settings for the task, or the bot's defaults (flagged) if the store is down."""
    svc = turn.services
    default_model = svc.settings.default_models.get(spec.name, spec.default_model)
    chat_id = turn.chat_id if turn.in_group else None
    resolved = await or_default(
        svc.store.preferences.resolve(
            turn.owner_id,
            chat_id,
            spec.name,
            default_model=default_model,
            default_params=spec.default_params(),
        ),
        None,
        what=f"the settings of {spec.name}",
    )
    if resolved is None:
        params = spec.default_params()
        return ResolvedSettings(default_model, "bot", params, dict.fromkeys(params, "bot")), True
    return resolved, False


async def prepare_call(
    turn: Turn,
    spec: TaskSpec,
    request: TaskRequest,
    usage: Usage,
    *,
    overrides: Mapping[str, Value] | None = None,
    announce_download: bool = True,
) -> PreparedCall:
    """Resolve this user's model and parameters, vet the model and make sure it is on disk.

    The pool then loads it from that folder, so what runs is exactly the
    revision and the files vetting approved. Without `announce_download`
    (inline queries have no chat to show a status in) the download is silent.
    """
    resolved, fallback = await resolve_settings(turn, spec)
    usage.model_id = request.model_override or resolved.model_id
    if request.model_override is None and resolved.model_source == "bot" and spec.default_model_for:
        usage.model_id = spec.default_model_for(
            request.text, turn.language, turn.services.settings.default_models
        )
    vetted = await turn.services.vetter.vet(spec.name, usage.model_id)
    source = await ensure_downloaded(turn, vetted, announce=announce_download)
    params = {**resolved.params, **(overrides or {})}
    return PreparedCall(
        usage.model_id, source, spec.call_kwargs(params, request.call_params), fallback
    )


async def run_call(
    turn: Turn,
    spec: TaskSpec,
    call: PreparedCall,
    request: TaskRequest,
    usage: Usage,
    *,
    on_text: TextCallback | None = None,
    caller: Caller | None = None,
) -> Output:
    """Load the inputs and run the model in the pool, as a request /cancel can stop.

    Only inside `handlers.request.guards.admitted` (it raises otherwise). The chat shows
    "typing…" while this runs (inline queries have no chat).
    `caller` defaults to this person, so their requests take turns with others'.
    """
    require_admitted()
    svc = turn.services
    chat_id = turn.chat_id
    typing = (
        svc.typing.during(turn.context.bot, chat_id)
        if chat_id is not None
        else contextlib.nullcontext()
    )
    async with typing:
        inputs = await request.model_input()
        usage.size = input_size(inputs)
        work = svc.pool.submit(
            spec.pipeline_task,
            call.model_id,
            inputs,
            call.kwargs,
            on_text=on_text,
            source=call.source,
            caller=caller or Caller(owner=turn.owner_id),
        )
        return await svc.running.run(turn.owner_id, work)


def check_work(
    spec: TaskSpec, call: PreparedCall, request: TaskRequest, settings: Settings
) -> None:
    """Refuse, before anything is queued, a request that fans out into too much model work.

    Zero-shot classification runs the model once per label over the whole
    text; generation makes max_new_tokens for each of num_return_sequences; a row
    with a check of its own (a picture's pixels × steps) applies it too.
    """
    if spec.work_check is not None:
        spec.work_check(call.kwargs, request.text, settings)
    labels = call.kwargs.get("candidate_labels") or ()
    if spec.input_kind == "text" and len(labels) * len(request.text) > settings.max_work_chars:
        raise TooMuchWork(
            key="error.too_much_work_labels",
            labels=len(labels),
            chars=len(request.text),
            limit=settings.max_work_chars,
        )
    sequences = int(call.kwargs.get("num_return_sequences", 1))
    tokens = int(call.kwargs.get("max_new_tokens", 0))
    if sequences * tokens > settings.max_work_tokens:
        raise TooMuchWork(
            key="error.too_much_work_tokens",
            sequences=sequences,
            tokens=tokens,
            limit=settings.max_work_tokens,
        )


def input_size(inputs: ModelInput) -> int | None:
    """Characters of a text, bytes of a file; the usage log keeps sizes, never content."""
    if isinstance(inputs, str):
        return len(inputs)
    data = getattr(inputs, "data", None)
    if isinstance(data, bytes):
        return len(data)
    if isinstance(inputs, Mapping):
        return sum(len(value) for value in inputs.values() if isinstance(value, str))
    return None


async def ensure_downloaded(turn: Turn, vetted: VettedModel, *, announce: bool = True) -> str:
    """The folder to load a vetted model from, downloading a Hub model first if need be.

    The person is told rather than left in silence: one status message, edited
    as the download goes. A request that arrives while another one downloads
    the same model waits for that download.
    """
    downloads = turn.services.downloads
    plan = vetted.plan
    if plan is None:
        return vetted.source
    folder = await downloads.folder(plan)
    if folder is not None:
        return str(folder)
    if downloads.in_progress(plan.model_id) or not announce:
        return str(await downloads.fetch(plan))
    status = await turn.reply(turn.t("download.started", model=vetted.model_id))

    async def show(text: str) -> None:
        await edit_html(status, html.escape(text))

    progress = ThrottledStatus(vetted.model_id, show)
    folder = await downloads.fetch(plan, progress)
    await progress.finish()
    return str(folder)
