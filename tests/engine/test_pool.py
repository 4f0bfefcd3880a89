"""PipelinePool: what a user of the bot would notice when many people use it at once."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import weakref
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
import torch

from bot.config import Settings
from bot.engine.fair_turns import Caller
from bot.engine.metrics import PoolMetrics
from bot.engine.model_cache import ModelCache, machine_memory_bytes, resolve_budget
from bot.engine.pool import PipelinePool, default_loader, usable_cores
from bot.engine.runners import Runner, load_runner
from bot.errors import ModelExceedsMemory, ModelLoadFailed, PoolBusy, PoolClosed, RequestTimeout
from bot.i18n import t
from bot.tasks import Output, Ranking, Texts

CLASSIFY = "text-classification"
WAIT = 10.0


def echo(model_id: str, given: Any, params: dict[str, Any]) -> Any:
    """A classifier's answer (zero-shot's, given labels) whose one label tells which model
    ran on what, with what."""
    label = json.dumps({"model": model_id, "input": given, "params": params})
    if "candidate_labels" in params:
        return {"sequence": given, "labels": [label], "scores": [1.0]}
    return [{"label": label, "score": 1.0}]


def echoed(result: Output) -> dict[str, Any]:
    """What `echo` said: the model, the input and the parameters one request ran with."""
    assert isinstance(result, Ranking)
    said: dict[str, Any] = json.loads(result.best.label)
    return said


class EchoRunner:
    """Answers each input with its model, input and parameters; can hold a batch at a gate."""

    def __init__(
        self, model_id: str, started: threading.Event, gate: threading.Event | None = None
    ) -> None:
        self.model_id = model_id
        self.started = started
        self.gate = gate
        self.calls: list[list[Any]] = []

    def __call__(self, inputs: list[Any], *, batch_size: int, **params: Any) -> list[Any]:
        self.calls.append(list(inputs))
        self.started.set()
        if self.gate is not None:
            self.gate.wait(WAIT)
        if "bad" in inputs:
            raise ValueError("bad input")
        return [echo(self.model_id, x, params) for x in inputs]


class FakeLoader:
    """Counts loads, can fail the first ones, hold a load, or hold one model's batches."""

    def __init__(
        self,
        *,
        failures: int = 0,
        hold: bool = False,
        gates: dict[str, threading.Event] | None = None,
    ) -> None:
        self.failures = failures
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.entered = threading.Event()
        self.batch_started = threading.Event()
        self.gates = gates or {}
        self.loads: list[str] = []
        self.runners: dict[str, EchoRunner] = {}

    def __call__(self, task: str, model_id: str) -> Runner:
        self.loads.append(model_id)
        self.entered.set()
        self.release.wait(WAIT)
        if self.failures:
            self.failures -= 1
            raise OSError(f"cannot read {model_id}")
        runner = EchoRunner(model_id, self.batch_started, self.gates.get(model_id))
        self.runners[model_id] = runner
        return runner


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "pool_max_wait_ms": 20,
        "pool_max_batch_size": 8,
        "pool_queue_size": 64,
        "pool_max_loaded_models": 3,
        "pool_request_timeout_s": WAIT,
        "pool_device": "cpu",
    }
    return Settings(**(values | overrides))


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, WAIT)


@pytest.fixture
async def loader() -> AsyncIterator[FakeLoader]:
    fake = FakeLoader()
    yield fake
    fake.release.set()


async def test_pool_is_built_from_default_settings_alone() -> None:
    pool = PipelinePool()

    assert pool.metrics.snapshot().loaded_models == ()
    await pool.close()


async def test_concurrent_requests_are_served_by_one_batched_call(loader: FakeLoader) -> None:
    async with PipelinePool(settings(pool_max_wait_ms=200), loader=loader) as pool:
        texts = [f"text {i}" for i in range(6)]

        results = await asyncio.gather(*(pool.submit(CLASSIFY, "m", t) for t in texts))

        assert loader.runners["m"].calls == [texts]
        assert [echoed(r)["input"] for r in results] == texts
        assert pool.metrics.snapshot().batch_sizes == {6: 1}


async def test_each_caller_gets_its_own_result_under_concurrency(loader: FakeLoader) -> None:
    async with PipelinePool(settings(pool_max_batch_size=4), loader=loader) as pool:
        jobs = [(f"model-{i % 3}", f"text {i}", {"top_k": i % 2}) for i in range(40)]

        results = await asyncio.gather(
            *(pool.submit(CLASSIFY, model, text, params) for model, text, params in jobs)
        )

        said = [echoed(r) for r in results]
        assert [(r["model"], r["input"], r["params"]) for r in said] == jobs
        sizes = pool.metrics.snapshot().batch_sizes
        assert max(sizes) <= 4
        assert sum(size * n for size, n in sizes.items()) == 40


async def test_requests_with_different_params_never_share_a_batch(loader: FakeLoader) -> None:
    async with PipelinePool(settings(pool_max_wait_ms=50), loader=loader) as pool:
        labels = [["sports", "politics"], ["cats", "dogs"]]
        jobs = [
            ("zero-shot-classification", "z", f"t{i}", {"candidate_labels": labels[i % 2]})
            for i in range(6)
        ]

        results = await asyncio.gather(*(pool.submit(*job) for job in jobs))

        assert [echoed(r)["params"]["candidate_labels"] for r in results] == [
            j[3]["candidate_labels"] for j in jobs
        ]
        assert sorted(map(sorted, loader.runners["z"].calls)) == [
            ["t0", "t2", "t4"],
            ["t1", "t3", "t5"],
        ]


async def test_a_full_batch_runs_without_waiting_for_the_window(loader: FakeLoader) -> None:
    async with PipelinePool(
        settings(pool_max_wait_ms=60_000, pool_max_batch_size=3), loader=loader
    ) as pool:
        async with asyncio.timeout(WAIT):
            results = await asyncio.gather(*(pool.submit(CLASSIFY, "m", i) for i in range(3)))

        assert [echoed(r)["input"] for r in results] == [0, 1, 2]


async def test_concurrent_requests_for_a_loading_model_share_one_load() -> None:
    loader = FakeLoader(hold=True)
    async with PipelinePool(settings(), loader=loader) as pool:
        first = asyncio.create_task(pool.submit(CLASSIFY, "m", "a"))
        await wait_for(loader.entered)
        later = [asyncio.create_task(pool.submit(CLASSIFY, "m", x)) for x in "bcd"]
        loader.release.set()

        results = await asyncio.gather(first, *later)

        assert loader.loads == ["m"]
        assert [echoed(r)["input"] for r in results] == list("abcd")
        assert "text-classification:m" in pool.metrics.snapshot().load_seconds


async def test_two_engines_leasing_a_loading_model_share_its_one_load() -> None:
    loader = FakeLoader(hold=True)
    cache = ModelCache(loader, max_models=2, memory_budget_bytes=None, metrics=PoolMetrics())

    async def use() -> Runner:
        async with cache.lease(CLASSIFY, "m") as runner:
            return runner

    try:
        first = asyncio.create_task(use())
        await wait_for(loader.entered)
        second = asyncio.create_task(use())
        loader.release.set()

        one, other = await asyncio.gather(first, second)

        assert one is other
        assert loader.loads == ["m"]
    finally:
        loader.release.set()
        await cache.close()


async def test_a_failed_load_reaches_every_waiter_and_is_retried_later() -> None:
    loader = FakeLoader(failures=1, hold=True)
    async with PipelinePool(settings(), loader=loader) as pool:
        waiters = [asyncio.create_task(pool.submit(CLASSIFY, "m", x)) for x in "abc"]
        await wait_for(loader.entered)
        loader.release.set()

        outcomes = await asyncio.gather(*waiters, return_exceptions=True)

        assert all(isinstance(o, ModelLoadFailed) for o in outcomes)
        assert "cannot read m" in str(outcomes[0])
        assert loader.loads == ["m"]
        assert echoed(await pool.submit(CLASSIFY, "m", "again"))["input"] == "again"
        assert loader.loads == ["m", "m"]
        assert pool.metrics.snapshot().load_failures == 1


async def test_the_least_recently_used_model_is_evicted_and_freed(loader: FakeLoader) -> None:
    async with PipelinePool(settings(pool_max_loaded_models=2), loader=loader) as pool:
        await pool.submit(CLASSIFY, "a", "x")
        await pool.submit(CLASSIFY, "b", "x")
        await pool.submit(CLASSIFY, "a", "x")
        b_runner = weakref.ref(loader.runners.pop("b"))

        await pool.submit(CLASSIFY, "c", "x")
        gc.collect()

        assert pool.loaded_models() == ("text-classification:a", "text-classification:c")
        assert b_runner() is None
        assert pool.metrics.snapshot().evictions == 1
        await pool.submit(CLASSIFY, "b", "x")
        assert loader.loads == ["a", "b", "c", "b"]


async def test_a_model_in_use_is_not_evicted_and_the_bound_holds_once_it_is_idle() -> None:
    gate = threading.Event()
    loader = FakeLoader(gates={"a": gate})
    executor = ThreadPoolExecutor(max_workers=2)
    pool = PipelinePool(
        settings(pool_max_loaded_models=1, pool_max_wait_ms=0), loader=loader, executor=executor
    )
    try:
        busy = asyncio.create_task(pool.submit(CLASSIFY, "a", "long"))
        await wait_for(loader.batch_started)

        other = await pool.submit(CLASSIFY, "b", "short")

        assert echoed(other)["model"] == "b"
        assert "text-classification:a" in pool.loaded_models()
        gate.set()
        assert echoed(await busy)["model"] == "a"
        assert len(pool.loaded_models()) == 1
    finally:
        gate.set()
        await pool.close()
        executor.shutdown()


class WeightedRunner(EchoRunner):
    """A runner whose model holds `mib` MiB of float32 weights."""

    def __init__(self, model_id: str, mib: float = 0.6) -> None:
        super().__init__(model_id, threading.Event())
        self.model = torch.nn.Linear(int(mib * 2**20 / 4 / 256), 256, bias=False)


async def test_models_beyond_the_memory_budget_evict_the_least_recently_used() -> None:
    async with PipelinePool(
        settings(pool_memory_budget_mb=1),
        loader=lambda task, model_id: WeightedRunner(model_id),
        measure_memory=lambda: 0,
    ) as pool:
        await pool.submit(CLASSIFY, "a", "x")
        await pool.submit(CLASSIFY, "b", "x")

        assert pool.loaded_models() == ("text-classification:b",)
        assert pool.metrics.snapshot().evictions == 1


async def test_the_count_limit_is_off_by_default_and_memory_decides(loader: FakeLoader) -> None:
    async with PipelinePool(settings(pool_max_loaded_models=None), loader=loader) as pool:
        for model in "abcdefghij":
            await pool.submit(CLASSIFY, model, "x")

        assert len(pool.loaded_models()) == 10
        _, budget = pool.memory()
        assert budget is not None and budget > 0
        assert pool.metrics.snapshot().evictions == 0


async def test_a_model_larger_than_the_whole_budget_is_refused_with_its_size_and_the_budget(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\0" * 3 * 2**20)
    loads: list[str] = []

    def loader(task: str, source: str) -> Runner:
        loads.append(source)
        return WeightedRunner(source)

    async with PipelinePool(
        settings(pool_memory_budget_mb=2), loader=loader, measure_memory=lambda: 0
    ) as pool:
        with pytest.raises(ModelExceedsMemory) as refused:
            await pool.submit(CLASSIFY, "acme/big", "x", source=str(folder))

        assert refused.value.values == {"model": "acme/big", "size": "3 MiB", "budget": "2 MiB"}
        assert loads == []
        assert echoed(await pool.submit(CLASSIFY, "small", "x"))["model"] == "small"


async def test_a_model_measured_larger_than_the_budget_once_loaded_is_refused_and_dropped() -> None:
    async with PipelinePool(
        settings(pool_memory_budget_mb=1),
        loader=lambda task, model_id: WeightedRunner(model_id, mib=1.5),
    ) as pool:
        with pytest.raises(ModelExceedsMemory):
            await pool.submit(CLASSIFY, "huge", "x")

        assert pool.loaded_models() == ()


async def test_a_footprint_counts_what_the_first_batch_keeps_allocated() -> None:
    """The process's resident memory, as the cache reads it, grows by 5 MiB during the first
    batch of `a` and stays: that counts against the budget, so `a` goes once `b` loads."""
    resident = [100 * 2**20]

    class Allocating(EchoRunner):
        def __call__(self, inputs: list[Any], *, batch_size: int, **params: Any) -> list[Any]:
            resident[0] += 5 * 2**20
            return super().__call__(inputs, batch_size=batch_size, **params)

    async with PipelinePool(
        settings(pool_memory_budget_mb=8),
        loader=lambda task, model_id: Allocating(model_id, threading.Event()),
        measure_memory=lambda: resident[0],
    ) as pool:
        await pool.submit(CLASSIFY, "a", "x")
        await pool.submit(CLASSIFY, "a", "y")
        assert pool.memory()[0] == 5 * 2**20
        await pool.submit(CLASSIFY, "b", "x")

        assert pool.loaded_models() == ("text-classification:b",)


async def test_a_loaded_model_answers_while_another_model_is_still_loading() -> None:
    """A first `/summarize` loading (or exporting to ONNX) does not hold up a `/sentiment`
    whose model is loaded: loads have a thread of their own, even with one batch thread."""
    loading = threading.Event()
    release = threading.Event()

    def loader(task: str, model_id: str) -> Runner:
        if model_id == "slow":
            loading.set()
            release.wait(WAIT)
        return EchoRunner(model_id, threading.Event())

    async with PipelinePool(
        settings(pool_executor_workers=1, pool_max_wait_ms=0), loader=loader
    ) as pool:
        await pool.submit(CLASSIFY, "fast", "warm")
        slow = asyncio.create_task(pool.submit(CLASSIFY, "slow", "long text"))
        await wait_for(loading)

        answer = await asyncio.wait_for(pool.submit(CLASSIFY, "fast", "hello"), WAIT)

        assert echoed(answer)["input"] == "hello"
        assert not release.is_set() and not slow.done()
        release.set()
        assert echoed(await slow)["model"] == "slow"


HeldPool = tuple[PipelinePool, FakeLoader, threading.Event]


@pytest.fixture
async def held_pool() -> AsyncIterator[HeldPool]:
    """A pool whose model `m` holds each batch until the gate opens; one request per batch."""
    gate = threading.Event()
    loader = FakeLoader(gates={"m": gate})
    pool = PipelinePool(
        settings(pool_queue_size=2, pool_max_batch_size=1, pool_max_wait_ms=0), loader=loader
    )
    yield pool, loader, gate
    gate.set()
    await pool.close()


async def let_queue(pool: PipelinePool, depth: int) -> None:
    """Yield once: tasks just created (or cancelled) run up to their await, in order."""
    await asyncio.sleep(0)
    assert pool.metrics.snapshot().total_queue_depth == depth


async def test_a_full_queue_refuses_new_requests_at_once(held_pool: HeldPool) -> None:
    pool, loader, gate = held_pool
    running = asyncio.create_task(pool.submit(CLASSIFY, "m", "running"))
    await wait_for(loader.batch_started)
    queued = [asyncio.create_task(pool.submit(CLASSIFY, "m", f"q{i}")) for i in range(2)]
    await let_queue(pool, 2)

    with pytest.raises(PoolBusy):
        await pool.submit(CLASSIFY, "m", "one too many")

    gate.set()
    results = await asyncio.gather(running, *queued)
    assert [echoed(r)["input"] for r in results] == ["running", "q0", "q1"]
    assert pool.metrics.snapshot().rejected_busy == 1


async def test_a_request_that_takes_too_long_times_out_and_leaves_the_queue() -> None:
    gate = threading.Event()
    loader = FakeLoader(gates={"m": gate})
    pool = PipelinePool(
        settings(pool_request_timeout_s=0.2, pool_max_batch_size=1, pool_max_wait_ms=0),
        loader=loader,
    )
    try:
        running = asyncio.create_task(pool.submit(CLASSIFY, "m", "running"))
        await wait_for(loader.batch_started)
        queued = asyncio.create_task(pool.submit(CLASSIFY, "m", "queued"))

        with pytest.raises(RequestTimeout):
            await running
        with pytest.raises(RequestTimeout):
            await queued

        assert pool.metrics.snapshot().total_queue_depth == 0
        assert pool.metrics.snapshot().timed_out == 2
        gate.set()
        await pool.close()
        assert loader.runners["m"].calls == [["running"]]
    finally:
        gate.set()
        await pool.close()


async def test_cancelling_a_queued_request_withdraws_it(held_pool: HeldPool) -> None:
    pool, loader, gate = held_pool
    running = asyncio.create_task(pool.submit(CLASSIFY, "m", "running"))
    await wait_for(loader.batch_started)
    withdrawn = asyncio.create_task(pool.submit(CLASSIFY, "m", "withdrawn"))
    kept = asyncio.create_task(pool.submit(CLASSIFY, "m", "kept"))
    await let_queue(pool, 2)

    withdrawn.cancel()
    await let_queue(pool, 1)
    gate.set()

    done = await asyncio.gather(running, kept)
    assert [echoed(r)["input"] for r in done] == ["running", "kept"]
    assert withdrawn.cancelled()
    assert loader.runners["m"].calls == [["running"], ["kept"]]


async def test_one_persons_burst_delays_another_persons_request_by_one_batch_at_most() -> None:
    gate = threading.Event()
    loader = FakeLoader(gates={"m": gate})
    alice, bob = Caller(owner="alice"), Caller(owner="bob")
    async with PipelinePool(
        settings(pool_max_batch_size=2, pool_max_wait_ms=0), loader=loader
    ) as pool:
        first = asyncio.create_task(pool.submit(CLASSIFY, "m", "a0", caller=alice))
        await wait_for(loader.batch_started)
        burst = [
            asyncio.create_task(pool.submit(CLASSIFY, "m", f"a{i}", caller=alice))
            for i in range(1, 6)
        ]
        single = asyncio.create_task(pool.submit(CLASSIFY, "m", "b1", caller=bob))
        await let_queue(pool, 6)
        gate.set()
        await asyncio.gather(first, single, *burst)

    assert loader.runners["m"].calls[:2] == [["a0"], ["b1", "a1"]], "Bob was served least recently"
    assert [x for call in loader.runners["m"].calls for x in call if x.startswith("a")] == [
        f"a{i}" for i in range(6)
    ], "one person's own requests keep their order"


async def test_a_queued_request_hears_its_place_in_line_as_it_moves(held_pool: HeldPool) -> None:
    pool, loader, gate = held_pool
    running = asyncio.create_task(pool.submit(CLASSIFY, "m", "running"))
    await wait_for(loader.batch_started)
    heard: dict[str, list[int]] = {"q1": [], "q2": []}
    queued = [
        asyncio.create_task(
            pool.submit(CLASSIFY, "m", name, caller=Caller(on_position=heard[name].append))
        )
        for name in heard
    ]
    await let_queue(pool, 2)
    assert heard == {"q1": [1], "q2": [2]}

    gate.set()
    await asyncio.gather(running, *queued)
    assert heard == {"q1": [1, 0], "q2": [2, 1, 0]}, "0 means it is running"


async def test_closing_finishes_the_running_batch_and_refuses_the_queue(
    held_pool: HeldPool,
) -> None:
    pool, loader, gate = held_pool
    running = asyncio.create_task(pool.submit(CLASSIFY, "m", "running"))
    await wait_for(loader.batch_started)
    queued = [asyncio.create_task(pool.submit(CLASSIFY, "m", f"q{i}")) for i in range(2)]
    await let_queue(pool, 2)

    closing = asyncio.create_task(pool.close())
    await asyncio.sleep(0)
    gate.set()
    await closing

    assert echoed(await running)["input"] == "running"
    for task in queued:
        with pytest.raises(PoolClosed):
            await task
    with pytest.raises(PoolClosed):
        await pool.submit(CLASSIFY, "m", "after close")
    assert pool.loaded_models() == ()


async def test_one_bad_input_fails_only_its_own_request(loader: FakeLoader) -> None:
    async with PipelinePool(settings(pool_max_wait_ms=100), loader=loader) as pool:
        outcomes = await asyncio.gather(
            *(pool.submit(CLASSIFY, "m", x) for x in ["good", "bad", "fine"]),
            return_exceptions=True,
        )

        assert echoed(outcomes[0])["input"] == "good"
        assert isinstance(outcomes[1], ValueError)
        assert echoed(outcomes[2])["input"] == "fine"


async def test_metrics_snapshot_reports_loads_batches_and_latency(loader: FakeLoader) -> None:
    async with PipelinePool(settings(), loader=loader) as pool:
        await asyncio.gather(*(pool.submit(CLASSIFY, "m", i) for i in range(3)))

        snapshot = pool.metrics.snapshot()

        assert snapshot.loaded_models == ("text-classification:m",)
        assert snapshot.requests == snapshot.completed == snapshot.latency_count == 3
        assert snapshot.latency_buckets[float("inf")] == 3
        assert snapshot.mean_batch_size == 3.0
        assert snapshot.load_seconds["text-classification:m"] >= 0


class RecordingLoader:
    """The real loader, noting the size of every batch the real pipeline is called with."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    def __call__(self, task: str, model_id: str) -> Runner:
        runner = load_runner(task, model_id, device="cpu", dtype="float32")

        def recorded(inputs: list[Any], *, batch_size: int, **params: Any) -> list[Any]:
            self.batch_sizes.append(len(inputs))
            return runner(inputs, batch_size=batch_size, **params)

        return recorded


async def test_a_real_classifier_groups_concurrent_texts_into_one_batch(
    tiny_classifier: Path,
) -> None:
    loader = RecordingLoader()
    texts = ["I love it.", "I hate it.", "Paris is nice.", "Meh", "The robot reads.", "Bob"]
    alone = load_runner(CLASSIFY, str(tiny_classifier), device="cpu", dtype="float32")
    expected = [alone([t], batch_size=1)[0] for t in texts]
    async with PipelinePool(settings(pool_max_wait_ms=200), loader=loader) as pool:
        results = await asyncio.gather(
            *(pool.submit(CLASSIFY, str(tiny_classifier), t) for t in texts)
        )

    assert loader.batch_sizes == [6]
    for got, want in zip(results, expected, strict=True):
        assert isinstance(got, Ranking)
        assert got.best.label == want["label"]
        assert got.best.score == pytest.approx(want["score"], abs=1e-5)


async def test_a_real_generator_batches_prompts_and_continues_each_one(tiny_gpt2: Path) -> None:
    loader = RecordingLoader()
    prompts = ["Once upon a time", "The robot wanted to", "Paris"]
    greedy = {"max_new_tokens": 4, "do_sample": False}
    async with PipelinePool(settings(pool_max_wait_ms=200), loader=loader) as pool:
        results = await asyncio.gather(
            *(pool.submit("text-generation", str(tiny_gpt2), p, greedy) for p in prompts)
        )
        alone = [await pool.submit("text-generation", str(tiny_gpt2), p, greedy) for p in prompts]

    assert loader.batch_sizes == [3, 1, 1, 1]
    assert results == alone
    for prompt, result in zip(prompts, results, strict=True):
        assert isinstance(result, Texts)
        assert result.texts[0].startswith(prompt)


def test_the_default_loader_loads_on_the_device_and_dtype_from_settings(
    tiny_classifier: Path,
) -> None:
    load = default_loader(settings(pool_device="cpu", pool_dtype="bfloat16"))

    runner = load(CLASSIFY, str(tiny_classifier))

    assert runner.model.dtype is torch.bfloat16
    assert runner.model.device.type == "cpu"


async def test_torch_threads_follow_the_setting_when_given(loader: FakeLoader) -> None:
    before = torch.get_num_threads()
    try:
        await PipelinePool(settings(pool_torch_threads=1), loader=loader).close()

        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


async def test_by_default_torch_leaves_one_core_to_the_event_loop(loader: FakeLoader) -> None:
    before = torch.get_num_threads()
    try:
        await PipelinePool(settings(pool_torch_threads=None), loader=loader).close()

        assert torch.get_num_threads() == max(1, usable_cores() - 1)
    finally:
        torch.set_num_threads(before)


def test_a_container_cpu_quota_bounds_the_cores_the_bot_counts(tmp_path: Path) -> None:
    v2, v1_quota, v1_period = tmp_path / "cpu.max", tmp_path / "quota", tmp_path / "period"
    affinity = len(os.sched_getaffinity(0))

    v2.write_text("150000 100000\n")  # docker run --cpus=1.5
    assert usable_cores(((v2, None),)) == min(affinity, 2)
    v2.write_text("max 100000\n")  # no quota: the affinity counts
    assert usable_cores(((v2, None),)) == affinity
    v1_quota.write_text("50000\n")
    v1_period.write_text("100000\n")  # half a core is still one core
    assert usable_cores(((v2, None), (v1_quota, v1_period))) == 1
    assert usable_cores(((tmp_path / "absent", None),)) == affinity


def test_the_auto_budget_is_the_stated_share_of_the_machine_memory() -> None:
    machine = machine_memory_bytes()

    assert resolve_budget("auto", 0.5) == machine // 2
    assert resolve_budget(512, 0.5) == 512 * 2**20
    assert resolve_budget("off", 0.5) is None
    assert 0 < machine <= psutil.virtual_memory().total


def test_the_refusal_for_a_model_too_big_for_memory_reads_well_in_both_languages() -> None:
    values = {"model": "acme/big", "size": "3 MiB", "budget": "2 MiB"}
    for language in ("en", "zh"):
        text = t(language, ModelExceedsMemory.key, values)
        assert "acme/big" in text and "3 MiB" in text and "2 MiB" in text


async def test_a_faster_form_of_a_model_waits_until_no_batch_runs_then_takes_over() -> None:
    """An export keeps the CPU busy: it starts once the pool is quiet, and later leases get
    the faster runner while a lease already held keeps the one it has."""
    made: list[str] = []
    faster = EchoRunner("a-faster", threading.Event())

    def upgrade(task: str, model_id: str) -> Runner:
        made.append(model_id)
        return faster

    cache = ModelCache(
        lambda task, model_id: EchoRunner(model_id, threading.Event()),
        memory_budget_bytes=None,
        metrics=PoolMetrics(),
        upgrade=upgrade,
        upgrade_quiet_s=0.05,
        upgrade_wait_s=WAIT,
    )
    try:
        async with cache.lease(CLASSIFY, "a") as first:
            for _ in range(20):
                await asyncio.sleep(0)
            assert made == []
        await cache.upgrades_done()
        async with cache.lease(CLASSIFY, "a") as second:
            pass

        assert made == ["a"]
        assert first is not faster and second is faster
    finally:
        await cache.close()


async def test_generation_beyond_the_engines_room_waits_in_a_fair_line_told_its_place(
    tiny_gpt2: Path,
) -> None:
    model = str(tiny_gpt2)
    started = asyncio.Event()
    places: dict[str, list[int]] = {"bob": [], "carol": []}
    async with PipelinePool(settings(generation_max_running=1)) as pool:
        first = asyncio.create_task(
            pool.submit(
                "text-generation",
                model,
                "Once upon a time",
                {"max_new_tokens": 200, "do_sample": False},
                on_text=lambda _text: started.set(),
                caller=Caller(owner="alice"),
            )
        )
        await asyncio.wait_for(started.wait(), WAIT)
        waiting = [
            asyncio.create_task(
                pool.submit(
                    "text-generation",
                    model,
                    "The robot",
                    {"max_new_tokens": 2},
                    caller=Caller(owner=name, on_position=places[name].append),
                )
            )
            for name in places
        ]
        results = await asyncio.wait_for(asyncio.gather(first, *waiting), WAIT)

    assert [result.texts[0][:9] for result in results] == ["Once upon", "The robot", "The robot"]
    assert places == {"bob": [1, 0], "carol": [2, 1, 0]}


def test_the_engines_room_defaults_to_what_its_kv_cache_holds() -> None:
    assert Settings().generation_running_limit == 32
    assert Settings(generation_kv_cache_tokens=65536).generation_running_limit == 256
    assert Settings(generation_max_running=4).generation_running_limit == 4
    assert Settings(generation_max_running=0).generation_running_limit is None
