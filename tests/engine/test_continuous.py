"""The continuous-batching engine on a tiny GPT-2 (random weights, real transformers manager).

A test that needs "while A is running" waits for A's first streamed text, not
for the clock, and every wait has a generous ceiling so a bug fails the test
instead of hanging it. The one clock in here is the timeout test's 50 ms,
against a request that needs 240 steps (over 0.5 s on the fastest machine).
The models come from the session fixtures of `tests.support.model_fixtures`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    ContinuousBatchingConfig,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from bot.engine.continuous_engine import ContinuousGenerationEngine, unsupported_reason
from bot.engine.fair_turns import Caller
from bot.errors import ContextTooLong, PoolBusy, PoolClosed, RequestTimeout
from bot.tasks import TASKS

PROMPT = "The book is"
LONG = {"max_new_tokens": 200, "do_sample": False}
CEILING_S = 30.0

EngineFactory = Callable[..., ContinuousGenerationEngine]


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """One loaded model per module: engines come and go, the manager restores what it changes."""
    return AutoModelForCausalLM.from_pretrained(tiny_gpt2), AutoTokenizer.from_pretrained(tiny_gpt2)


@pytest.fixture
async def make_engine(
    gpt2: tuple[PreTrainedModel, PreTrainedTokenizerBase],
) -> AsyncIterator[EngineFactory]:
    """Started engines on the tiny GPT-2 that stop at max_new_tokens, closed after the test."""
    engines: list[ContinuousGenerationEngine] = []

    def make(**options: Any) -> ContinuousGenerationEngine:
        model, tokenizer = gpt2
        options = {"stop_at_eos": False, "kv_cache_tokens": 2048, "page_size": 16} | options
        engine = ContinuousGenerationEngine(model, tokenizer, **options)
        engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await asyncio.wait_for(engine.close(), CEILING_S)


@pytest.fixture
def forward_tokens(gpt2: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> Iterator[list[int]]:
    """The number of tokens in every forward pass of the model, in order: the manager's steps."""
    model, _ = gpt2
    tokens: list[int] = []

    def record(_module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        tokens.append(int(input_ids.shape[-1]))

    hook = model.register_forward_pre_hook(record, with_kwargs=True)
    yield tokens
    hook.remove()


class Stream:
    """An `on_text` callback that records every text and signals the first one."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.started = asyncio.Event()

    def __call__(self, text: str) -> None:
        self.texts.append(text)
        self.started.set()

    async def wait_started(self) -> None:
        await asyncio.wait_for(self.started.wait(), CEILING_S)


def greedy_reference(
    gpt2: tuple[PreTrainedModel, PreTrainedTokenizerBase], max_new_tokens: int
) -> str:
    """What `generate()` itself answers for PROMPT, greedy, never stopping early."""
    model, tokenizer = gpt2
    input_ids = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    config = GenerationConfig(
        do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=None, pad_token_id=0
    )
    with torch.no_grad():
        output = model.generate(input_ids, generation_config=config)
    return PROMPT + tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)


async def test_greedy_requests_in_a_sampling_batch_match_generate_with_their_own_lengths(
    gpt2: tuple[PreTrainedModel, PreTrainedTokenizerBase], make_engine: EngineFactory
) -> None:
    expected = {n: greedy_reference(gpt2, n) for n in (4, 12)}
    engine = make_engine()

    async def one_batch() -> list[list[dict[str, str]]]:
        return await asyncio.gather(
            engine.generate(PROMPT, {"max_new_tokens": 4, "do_sample": False}),
            engine.generate(PROMPT, {"max_new_tokens": 16, "temperature": 1.9, "top_k": 0}),
            engine.generate(PROMPT, {"max_new_tokens": 12, "do_sample": False}),
            engine.generate(PROMPT, {"max_new_tokens": 8, "temperature": 0.3, "top_p": 0.5}),
        )

    runs = [await one_batch() for _ in range(3)]

    for short, hot, long, _cool in runs:
        assert short == [{"generated_text": expected[4]}]
        assert long == [{"generated_text": expected[12]}]
        assert hot[0]["generated_text"].startswith(PROMPT)
    assert len({run[1][0]["generated_text"] for run in runs}) > 1


async def test_num_return_sequences_answers_one_text_per_sequence(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()

    result = await engine.generate(
        PROMPT, {"max_new_tokens": 6, "num_return_sequences": 3, "temperature": 1.5}
    )

    assert len(result) == 3
    assert all(item["generated_text"].startswith(PROMPT) for item in result)
    assert engine.in_flight == 0


async def test_request_submitted_while_another_runs_joins_before_the_first_finishes(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    first_stream = Stream()
    first = asyncio.create_task(engine.generate(PROMPT, LONG, on_text=first_stream))
    await first_stream.wait_started()

    second = await asyncio.wait_for(engine.generate(PROMPT, {"max_new_tokens": 3}), CEILING_S)

    assert second[0]["generated_text"].startswith(PROMPT)
    assert not first.done()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_streaming_text_grows_and_ends_with_the_returned_text(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    stream = Stream()

    result = await engine.generate(
        PROMPT, {"max_new_tokens": 20, "do_sample": False}, on_text=stream
    )

    assert len(stream.texts) > 1
    for shorter, longer in zip(stream.texts, stream.texts[1:], strict=False):
        assert longer.startswith(shorter) and len(longer) > len(shorter)
    assert stream.texts[0].startswith(PROMPT)
    assert stream.texts[-1] == result[0]["generated_text"]


async def test_cancelling_mid_stream_stops_the_request_and_frees_its_slot(
    make_engine: EngineFactory, forward_tokens: list[int]
) -> None:
    engine = make_engine(max_queue=1, max_batch_requests=1)
    stream = Stream()
    running = asyncio.create_task(engine.generate(PROMPT, LONG, on_text=stream))
    await stream.wait_started()

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    texts_at_cancel = len(stream.texts)
    following = await asyncio.wait_for(engine.generate(PROMPT, {"max_new_tokens": 5}), CEILING_S)

    assert following[0]["generated_text"].startswith(PROMPT)
    assert len(stream.texts) == texts_at_cancel
    assert engine.in_flight == 0
    assert len(forward_tokens) < LONG["max_new_tokens"] * 3 // 4


async def test_request_cancelled_while_waiting_for_a_batch_slot_is_never_prefilled(
    gpt2: tuple[PreTrainedModel, PreTrainedTokenizerBase],
    make_engine: EngineFactory,
    forward_tokens: list[int],
) -> None:
    _, tokenizer = gpt2
    waiting_prompt = "Once upon a time there was a small robot who wanted to read"
    waiting_tokens = len(tokenizer(waiting_prompt)["input_ids"])
    assert waiting_tokens != len(tokenizer(PROMPT)["input_ids"])
    engine = make_engine(max_batch_requests=1)
    stream = Stream()
    running = asyncio.create_task(
        engine.generate(PROMPT, {"max_new_tokens": 40, "do_sample": False}, on_text=stream)
    )
    await stream.wait_started()
    waiting = asyncio.create_task(engine.generate(waiting_prompt, {"max_new_tokens": 5}))
    await asyncio.sleep(0)  # one turn of the loop: generate() submits before its first await
    assert engine.in_flight == 2

    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.wait_for(running, CEILING_S)
    after = await engine.generate("Alice lives in London", {"max_new_tokens": 2})

    assert after[0]["generated_text"].startswith("Alice lives in London")
    assert waiting_tokens not in forward_tokens
    assert engine.in_flight == 0


async def test_more_pending_sequences_than_the_queue_holds_are_refused_at_once(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(max_queue=2)
    stream = Stream()
    running = asyncio.create_task(
        engine.generate(PROMPT, LONG | {"num_return_sequences": 2}, on_text=stream)
    )
    await stream.wait_started()

    with pytest.raises(PoolBusy):
        await engine.generate(PROMPT, {"max_new_tokens": 2})

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert engine.in_flight == 0


async def test_request_that_outlives_its_timeout_fails_and_frees_its_slot(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(max_queue=1, request_timeout_s=0.05)

    with pytest.raises(RequestTimeout):
        await engine.generate(PROMPT, {"max_new_tokens": 240, "do_sample": False})

    assert engine.in_flight == 0
    result = await engine.generate(PROMPT, {"max_new_tokens": 2}, timeout_s=CEILING_S)
    assert result[0]["generated_text"].startswith(PROMPT)


async def test_closing_with_requests_in_flight_answers_every_waiter_with_pool_closed(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()
    stream = Stream()
    waiters = [
        asyncio.create_task(engine.generate(PROMPT, LONG, on_text=stream)),
        asyncio.create_task(engine.generate(PROMPT, LONG | {"num_return_sequences": 2})),
        asyncio.create_task(engine.generate(PROMPT, {"max_new_tokens": 200})),
    ]
    await stream.wait_started()

    await asyncio.wait_for(engine.close(), CEILING_S)
    outcomes = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), CEILING_S)

    assert all(isinstance(outcome, PoolClosed) for outcome in outcomes)
    assert not engine.is_running
    with pytest.raises(PoolClosed):
        await engine.generate(PROMPT, {"max_new_tokens": 2})


async def test_failing_stream_callback_fails_only_its_own_request(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()

    def broken(_text: str) -> None:
        raise RuntimeError("chat went away")

    outcomes = await asyncio.gather(
        engine.generate(PROMPT, {"max_new_tokens": 10}, on_text=broken),
        engine.generate(PROMPT, {"max_new_tokens": 10}),
        return_exceptions=True,
    )

    assert isinstance(outcomes[0], RuntimeError)
    assert outcomes[1][0]["generated_text"].startswith(PROMPT)
    assert engine.in_flight == 0


async def test_request_longer_than_the_model_context_is_refused_before_it_is_queued(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()

    with pytest.raises(ContextTooLong):
        await engine.generate(PROMPT, {"max_new_tokens": 256})

    assert engine.in_flight == 0


async def test_parameter_without_a_per_request_processor_is_refused_by_generate(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine()

    with pytest.raises(ValueError, match="repetition_penalty"):
        await engine.generate(PROMPT, {"max_new_tokens": 4, "repetition_penalty": 1.2})


def test_engine_serves_the_generate_command_defaults_on_a_decoder_only_model(
    gpt2: tuple[PreTrainedModel, PreTrainedTokenizerBase],
) -> None:
    model, _ = gpt2

    assert ContinuousGenerationEngine.supports(model, TASKS["generate"].default_params())


def test_engine_refuses_an_encoder_decoder_model(tiny_seq2seq: Path) -> None:
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_seq2seq)

    reason = unsupported_reason(model, {"max_new_tokens": 10})

    assert reason is not None and "encoder-decoder" in reason
    assert not ContinuousGenerationEngine.supports(model, {"max_new_tokens": 10})


@pytest.mark.filterwarnings("ignore:Passing `repetition_penalty`")
def test_engine_refuses_a_repetition_penalty_the_manager_cannot_apply_per_request(
    gpt2: tuple[PreTrainedModel, PreTrainedTokenizerBase],
) -> None:
    model, _ = gpt2
    manager = model.init_continuous_batching(
        generation_config=GenerationConfig(
            do_sample=True, temperature=0.8, repetition_penalty=1.3, eos_token_id=-1
        ),
        continuous_batching_config=ContinuousBatchingConfig(per_request_processors=True),
    )
    per_request = set(manager.logit_processor.supported_keys)
    manager.destroy()

    assert "temperature" in per_request
    assert "repetition_penalty" not in per_request
    assert not ContinuousGenerationEngine.supports(model, {"repetition_penalty": 1.3})
    assert ContinuousGenerationEngine.supports(model, {"repetition_penalty": 1.0})


async def test_requests_beyond_max_running_wait_in_line_told_their_place_and_all_finish(
    make_engine: EngineFactory, forward_tokens: list[int]
) -> None:
    engine = make_engine(max_running=1)
    stream = Stream()
    running = asyncio.create_task(
        engine.generate(PROMPT, {"max_new_tokens": 30, "do_sample": False}, on_text=stream)
    )
    await stream.wait_started()
    places: dict[str, list[int]] = {"bob": [], "carol": []}
    waiting = [
        asyncio.create_task(
            engine.generate(
                PROMPT,
                {"max_new_tokens": 3},
                caller=Caller(owner=name, on_position=places[name].append),
            )
        )
        for name in places
    ]
    await asyncio.sleep(0)
    assert places == {"bob": [1], "carol": [2]}
    assert engine.waiting == 2 and engine.in_flight == 3
    steps_before = len(forward_tokens)

    await asyncio.wait_for(running, CEILING_S)
    results = await asyncio.wait_for(asyncio.gather(*waiting), CEILING_S)

    assert all(result[0]["generated_text"].startswith(PROMPT) for result in results)
    assert places == {"bob": [1, 0], "carol": [2, 1, 0]}
    assert engine.waiting == 0 and engine.in_flight == 0
    assert len(forward_tokens) > steps_before


async def test_a_request_cancelled_in_line_never_reaches_the_manager(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(max_running=1)
    stream = Stream()
    running = asyncio.create_task(engine.generate(PROMPT, LONG, on_text=stream))
    await stream.wait_started()
    waiting = asyncio.create_task(engine.generate(PROMPT, {"max_new_tokens": 3}))
    await asyncio.sleep(0)

    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert engine.waiting == 0 and engine.in_flight == 1
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert engine.in_flight == 0


async def test_closing_answers_requests_waiting_in_line_with_pool_closed(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(max_running=1)
    stream = Stream()
    running = asyncio.create_task(engine.generate(PROMPT, LONG, on_text=stream))
    await stream.wait_started()
    waiting = asyncio.create_task(engine.generate(PROMPT, {"max_new_tokens": 3}))
    await asyncio.sleep(0)

    await asyncio.wait_for(engine.close(), CEILING_S)

    for task in (running, waiting):
        with pytest.raises(PoolClosed):
            await asyncio.wait_for(task, CEILING_S)
