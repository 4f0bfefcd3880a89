"""Continuous-batching text generation for one decoder-only model.

Users of one generation model each bring their own `temperature`, `top_k`,
`top_p` and `max_new_tokens`. A static batcher can only batch requests that
share all of them, so per-user settings push it back to one request at a time;
transformers' `ContinuousBatchingManager` instead runs every request in one
batch with per-request logits processors, lets a new request join at the next
step, streams tokens and stops one request without touching the others.

This module wraps the manager for the event loop: a bounded count in front so
that overload is refused at once (`PoolBusy`) instead of blocking in
`add_request`, a fair line (`bot.engine.fair_turns.FairLine`) that admits at
most `max_running` sequences into the manager, taking turns across owners and
telling each waiting request its place (the manager keeps no line of its own
that could say who is next), one future per sequence resolved from the
manager's callbacks, cancellation that reaches the manager, and a `close()`
that answers every waiter. It knows nothing of Telegram; owners are opaque.

Measured on transformers 5.24 (see bench/RESULTS.md and DESIGN.md) and worked
around here:

- per-request sampling needs `per_request_processors=True` *and* a generation
  config whose defaults create each processor (a temperature of 1.0 or None
  creates none, and a request passing one then fails);
- the manager has no per-request `do_sample`: greedy is asked for as `top_k=1`;
- `top_k=0` (no top-k filtering, as `generate()` reads it) would become 1 in
  the per-request processor, so it is sent as the vocabulary size;
- `repetition_penalty` has no per-request processor (and the global one is
  dropped as unsupported), so it is refused by `unsupported_reason`;
- on CPU the KV cache is sized from 60 % of the machine's RAM unless told
  otherwise (3.4 GB for a 2-layer toy model), so it is always sized here;
- a cancelled request never delivers a final output, so its waiter is resolved
  here and its result handler removed here;
- outputs of a request with no handler go to the manager's shared output queue,
  which nothing reads: a cancelled request's last outputs are drained from it;
- one step's callbacks run in a single loop callback, on the loop of the last
  registered request: a callback that raises drops the outputs of the requests
  after it, so ours never raises, and an engine serves one event loop;
- `add_request` returns None (and drops the request) once the manager is
  stopping or dead, rather than raising.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import queue
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from transformers import ContinuousBatchingConfig, GenerationConfig
from transformers.generation.continuous_batching.utils import logger as _manager_log

from bot.engine.chat import ChatPrompt, FittedChat, chat_result, fit_conversation
from bot.engine.fair_turns import ANONYMOUS, Caller, FairLine
from bot.errors import ContextTooLong, EmptyInput, PoolBusy, PoolClosed, RequestTimeout
from bot.tasks import PARAMS

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
    from transformers.generation.continuous_batching import (
        ContinuousBatchingManager,
        GenerationOutput,
    )


TextCallback = Callable[[str], None]

# transformers gives the manager's logger a stderr handler of its own (when the module
# is first imported) and stops it propagating; it goes through the bot's logging like
# any other (format, level, file).
_manager_log.handlers.clear()
_manager_log.propagate = True

#: Parameters the engine applies per request; any other one sends a request elsewhere.
PER_REQUEST_PARAMS = frozenset(
    {"max_new_tokens", "temperature", "top_k", "top_p", "do_sample", "num_return_sequences"}
)
#: Parameters accepted only at the value that changes nothing.
NEUTRAL_VALUES: Mapping[str, float] = {"repetition_penalty": 1.0}
_CB_ATTENTION = {"sdpa", "eager", "paged|eager"}


class GenerationFailed(RuntimeError):
    """The manager reported an error for a request, or its generation thread died."""


def unsupported_reason(model: PreTrainedModel, params: Mapping[str, Any]) -> str | None:
    """Why this engine cannot serve `params` on `model`, or None when it can.

    The pool asks before routing: whatever is refused here still works on the
    micro-batching path, where `generate()` applies every processor.
    """
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder models are not served by continuous batching"
    if getattr(config, "vision_config", None) is not None:
        return "models that see pictures are served by the vision chat runner"
    if not callable(getattr(model, "init_continuous_batching", None)) or not model.can_generate():
        return f"{type(model).__name__} cannot generate text"
    attention = getattr(config, "_attn_implementation", None) or "eager"
    if attention not in _CB_ATTENTION and "flash" not in attention:
        return f"attention implementation {attention!r} has no paged variant"
    for name, value in params.items():
        if name in PER_REQUEST_PARAMS:
            continue
        if name in NEUTRAL_VALUES and float(value) == NEUTRAL_VALUES[name]:
            continue
        if name == "repetition_penalty":
            return (
                "repetition_penalty is not applied per request by transformers' continuous batching"
            )
        return f"{name} has no per-request logits processor"
    return None


@dataclass(frozen=True)
class _RequestSettings:
    """One request's parameters, in the types the manager's processors check."""

    max_new_tokens: int
    num_return_sequences: int
    processor_kwargs: dict[str, Any]


@dataclass
class _Sequence:
    """What one manager request reports to: its future and, for the first sequence, the stream."""

    future: asyncio.Future[GenerationOutput]
    prompt: str
    prompt_ids: list[int]
    prompt_chars: int
    on_text: TextCallback | None
    echo_prompt: bool = True
    last_text: str = field(default="")


class ContinuousGenerationEngine:
    """Continuous batching over one loaded decoder-only model, for the event loop.

    `max_queue` bounds the sequences in the engine (running or waiting); one
    more is refused with `PoolBusy`. At most `max_running` of them are in the
    manager at once, and together they may fill at most the KV cache (prompt
    plus `max_new_tokens`, reserved up front); the rest wait in a fair line
    (None: every accepted request goes straight into the manager, no line).
    The manager's own input queue is left unbounded so `add_request` never
    blocks the loop. The KV cache holds
    `kv_cache_tokens` tokens in pages of `page_size`; `max_batch_tokens` caps
    the tokens of one forward pass (prompts are prefilled in chunks of it) and
    `max_batch_requests` the requests in one step. `stop_at_eos=False` makes
    every request produce exactly `max_new_tokens` (benchmarks, tests).

    One engine belongs to one event loop: the manager calls back on the loop
    that submitted the request.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_queue: int = 64,
        max_running: int | None = None,
        request_timeout_s: float | None = None,
        device: str | None = None,
        kv_cache_tokens: int = 8192,
        page_size: int = 64,
        max_batch_tokens: int = 256,
        max_batch_requests: int | None = None,
        stop_at_eos: bool = True,
        seed: int | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        if device is not None:
            model = model.to(device)
        self._model = model
        self._tokenizer = tokenizer
        self._max_queue = max_queue
        self._timeout_s = request_timeout_s
        self._kv_cache_tokens = math.ceil(kv_cache_tokens / page_size) * page_size
        self._line = FairLine(
            max_slots=max_running,
            max_tokens=self._kv_cache_tokens if max_running is not None else None,
        )
        self._cb_config = ContinuousBatchingConfig(
            per_request_processors=True,
            page_size=page_size,
            num_blocks=self._kv_cache_tokens // page_size,
            max_batch_tokens=max_batch_tokens,
            max_requests_per_batch=max_batch_requests,
            max_queue_size=0,
            seed=seed,
        )
        text_config = model.config.get_text_config()
        self._vocab_size: int = text_config.vocab_size
        self._max_positions: int | None = getattr(text_config, "max_position_embeddings", None)
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = text_config.eos_token_id
        self._eos_token_id: int | list[int] = eos if stop_at_eos and eos is not None else -1
        self._generation_config = self._default_generation_config()
        self._manager: ContinuousBatchingManager | None = None
        self._sequences: dict[str, _Sequence] = {}
        self._in_flight = 0
        self._closed = False
        self._ids = itertools.count()

    @classmethod
    def supports(cls, model: PreTrainedModel, params: Mapping[str, Any]) -> bool:
        """Whether this engine can serve `params` on `model` (see `unsupported_reason`)."""
        return unsupported_reason(model, params) is None

    @property
    def in_flight(self) -> int:
        """Sequences accepted and not yet answered: what `max_queue` bounds."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Requests accepted and waiting in line for room in the manager."""
        return self._line.waiting

    @property
    def is_running(self) -> bool:
        return self._manager is not None and self._manager.is_running()

    def _default_generation_config(self) -> GenerationConfig:
        """A fresh config whose defaults are the registry's, so every processor exists.

        The model's own generation config is not reused: its extra processors
        (repetition penalty, bad words …) would be dropped or applied to every
        request alike.
        """
        return GenerationConfig(
            do_sample=True,
            temperature=float(PARAMS["temperature"].default),
            top_k=int(PARAMS["top_k"].default),
            top_p=float(PARAMS["top_p"].default),
            max_new_tokens=int(PARAMS["max_new_tokens"].default),
            num_return_sequences=1,
            eos_token_id=self._eos_token_id,
            pad_token_id=self._tokenizer.pad_token_id,
        )

    def start(self) -> None:
        """Create the manager and start its generation thread (the KV cache is allocated there)."""
        if self._closed:
            raise PoolClosed()
        if self._manager is not None:
            return
        manager = self._model.init_continuous_batching(
            generation_config=self._generation_config,
            continuous_batching_config=self._cb_config,
        )
        manager.start()
        self._manager = manager

    async def close(self) -> None:
        """Answer every waiter with `PoolClosed`, then stop the manager and free its cache.

        The manager is hard-stopped in a worker thread: it finishes at most the
        step in progress, so closing never waits for requests to complete.
        """
        if self._closed:
            return
        self._closed = True
        manager, self._manager = self._manager, None
        for request_id, sequence in list(self._sequences.items()):
            if not sequence.future.done():
                sequence.future.set_exception(PoolClosed())
            if manager is not None:
                _unregister_handler(manager, request_id)
        if manager is not None:
            await asyncio.to_thread(_shut_down, manager)

    async def generate(
        self,
        prompt: str | ChatPrompt,
        params: Mapping[str, Any],
        *,
        on_text: TextCallback | None = None,
        timeout_s: float | None = None,
        caller: Caller = ANONYMOUS,
    ) -> list[dict[str, Any]]:
        """Generate from `prompt` with this request's own parameters, pipeline-shaped.

        Returns `[{"generated_text": prompt + continuation}, ...]`, one dict per
        sequence. `on_text` runs on the event loop with the first sequence's
        full text (prompt included) each time it grows; its last call equals the
        first returned text. A `ChatPrompt` is rendered with the model's chat
        template, trimmed to fit, and answers with the reply alone (see
        `bot.engine.chat`). Cancelling the awaiting task stops the request in
        the manager at its next step (or takes it out of line). `timeout_s`
        overrides the engine's request timeout, which counts the wait in line too.
        `caller` says whose request it is (owners take turns in line) and who
        hears its place in line.
        """
        if self._closed:
            raise PoolClosed()
        if self._manager is None:
            raise RuntimeError("ContinuousGenerationEngine.start() was not called")
        settings = self._settings(params)
        count = settings.num_return_sequences
        if self._in_flight + count > self._max_queue:
            raise PoolBusy(in_flight=self._in_flight, limit=self._max_queue)
        fitted: FittedChat | None = None
        if isinstance(prompt, ChatPrompt):
            fitted = fit_conversation(
                self._tokenizer, prompt, settings.max_new_tokens, self._context_limit
            )
            prompt_ids, prompt = fitted.input_ids, ""
        else:
            prompt_ids = list(self._tokenizer(prompt)["input_ids"])
            if not prompt_ids:
                raise EmptyInput()
            self._check_length(len(prompt_ids), settings.max_new_tokens)
        loop = asyncio.get_running_loop()
        prompt_chars = len(self._decode(prompt_ids))
        reserved = (len(prompt_ids) + settings.max_new_tokens) * count
        timeout = self._timeout_s if timeout_s is None else timeout_s
        self._in_flight += count
        try:
            async with asyncio.timeout(timeout):
                async with self._line.place(caller, slots=count, tokens=reserved):
                    outputs, sequences = await self._run(
                        loop, prompt, prompt_ids, prompt_chars, settings, fitted, on_text
                    )
        except TimeoutError:
            raise RequestTimeout(timeout_s=timeout) from None
        finally:
            self._in_flight -= count
        texts = [
            self._text_of(sequence, output.generated_tokens)
            for sequence, output in zip(sequences, outputs, strict=True)
        ]
        if fitted is not None:
            return [chat_result(text, fitted) for text in texts]
        return [{"generated_text": text} for text in texts]

    async def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        prompt: str,
        prompt_ids: list[int],
        prompt_chars: int,
        settings: _RequestSettings,
        fitted: FittedChat | None,
        on_text: TextCallback | None,
    ) -> tuple[list[GenerationOutput], list[_Sequence]]:
        """Hand the request's sequences to the manager and wait for their final outputs."""
        manager = self._manager
        if self._closed or manager is None:
            raise PoolClosed()
        _drain_unclaimed_outputs(manager)
        request_ids = [f"hfbot-{next(self._ids)}" for _ in range(settings.num_return_sequences)]
        try:
            for index, request_id in enumerate(request_ids):
                stream = on_text if index == 0 else None
                self._sequences[request_id] = _Sequence(
                    future=loop.create_future(),
                    prompt=prompt,
                    prompt_ids=prompt_ids,
                    prompt_chars=prompt_chars,
                    on_text=stream,
                    echo_prompt=fitted is None,
                )
                manager.register_result_handler(request_id, self._handler(request_id))
                accepted = manager.add_request(
                    prompt_ids,
                    request_id=request_id,
                    max_new_tokens=settings.max_new_tokens,
                    streaming=stream is not None,
                    eos_token_id=self._eos_token_id,
                    **settings.processor_kwargs,
                )
                if accepted is None:
                    raise (
                        PoolClosed()
                        if self._closed
                        else GenerationFailed("the generation thread is not accepting requests")
                    )
            sequences = [self._sequences[request_id] for request_id in request_ids]
            outputs = await asyncio.gather(*(s.future for s in sequences))
        finally:
            for request_id in request_ids:
                self._forget(request_id)
        return list(outputs), sequences

    def _settings(self, params: Mapping[str, Any]) -> _RequestSettings:
        """Turn bot parameters into the manager's per-request arguments, or refuse them."""
        reason = unsupported_reason(self._model, params)
        if reason is not None:
            raise ValueError(reason)

        def value(name: str) -> Any:
            return params.get(name, PARAMS[name].default)

        top_k = int(value("top_k"))
        kwargs: dict[str, Any] = {
            "temperature": float(value("temperature")),
            "top_k": top_k if top_k > 0 else self._vocab_size,
            "top_p": float(value("top_p")),
        }
        if not bool(value("do_sample")):
            kwargs["top_k"] = 1
        return _RequestSettings(
            max_new_tokens=int(value("max_new_tokens")),
            num_return_sequences=int(value("num_return_sequences")),
            processor_kwargs=kwargs,
        )

    @property
    def _context_limit(self) -> int:
        """The most tokens one request may span: the model's positions, within the KV cache."""
        limit = self._kv_cache_tokens
        if self._max_positions is not None:
            limit = min(limit, self._max_positions)
        return limit

    def _check_length(self, prompt_tokens: int, max_new_tokens: int) -> None:
        """Refuse what the model or the cache cannot hold: inside the manager it would fail every request."""
        total = prompt_tokens + max_new_tokens
        if total > self._context_limit:
            raise ContextTooLong(tokens=total, limit=self._context_limit)

    def _handler(self, request_id: str) -> Callable[[GenerationOutput], None]:
        """The manager's callback for one request; runs on the event loop and never raises.

        The manager runs one step's callbacks in a single loop callback, so an
        exception here would drop the outputs of every later request in that step.
        """

        def deliver(output: GenerationOutput) -> None:
            sequence = self._sequences.get(request_id)
            if sequence is None or sequence.future.done():
                return
            try:
                if output.error is not None:
                    sequence.future.set_exception(GenerationFailed(output.error))
                    return
                finished = output.is_finished()
                if sequence.on_text is not None:
                    text = self._text_of(sequence, output.generated_tokens)
                    partial_char = text.endswith("\ufffd") and not finished
                    if text != sequence.last_text and not partial_char:
                        sequence.last_text = text
                        sequence.on_text(text)
                if finished:
                    sequence.future.set_result(output)
            except Exception as error:  # a failing on_text fails its own request only
                sequence.future.set_exception(error)

        return deliver

    def _forget(self, request_id: str) -> None:
        """Drop a request; one that has not finished is cancelled in the manager."""
        sequence = self._sequences.pop(request_id, None)
        manager = self._manager
        if sequence is None or manager is None:
            return
        finished = (
            sequence.future.done()
            and not sequence.future.cancelled()
            and sequence.future.exception() is None
        )
        if not finished:
            _unregister_handler(manager, request_id)
            manager.cancel_request(request_id)

    def _decode(self, token_ids: list[int]) -> str:
        text: str = self._tokenizer.decode(token_ids, skip_special_tokens=True)
        return text

    def _text_of(self, sequence: _Sequence, generated: list[int]) -> str:
        """Prompt + continuation, decoded with the prompt as the pipeline does (spacing at the seam);
        a chat turn's reply alone."""
        if not sequence.echo_prompt:
            return self._decode(list(generated))
        full = self._decode(sequence.prompt_ids + list(generated))
        return sequence.prompt + full[sequence.prompt_chars :]


def _unregister_handler(manager: ContinuousBatchingManager, request_id: str) -> None:
    """Remove a handler the manager would only remove after a final output, which a cancelled request never sends."""
    router = manager.output_router
    with router._lock:
        router.result_handlers.pop(request_id, None)


def _drain_unclaimed_outputs(manager: ContinuousBatchingManager) -> None:
    """Empty the shared output queue: every request of ours has a handler, so what lands there is stale."""
    pending = manager.output_router.output_queue
    while True:
        try:
            pending.get_nowait()
        except queue.Empty:
            return


def _shut_down(manager: ContinuousBatchingManager) -> None:
    """Blocking: hard-stop the generation thread (it fails what is left) and free the cache."""
    manager.stop(block=True, timeout=60, hard_stop=True)
    manager.destroy()
