"""What the pipeline pool counts, kept as plain numbers so any exporter can read them.

The pool records from the event loop thread only, so nothing here locks.
`snapshot()` copies the numbers into a frozen dataclass: a /metrics endpoint
(Prometheus or anything else) reads a consistent picture without knowing the pool.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
WAIT_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Histogram:
    """Counts per bucket bound, kept plainly so the pool needs no metrics library."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> dict[float, int]:
        """Observations at or below each bound, the last bound being +inf (Prometheus' shape)."""
        running, result = 0, {}
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            result[bound] = running
        return result


@dataclass
class EngineStats:
    """What /metrics shows per engine: requests by outcome, latency and time to first token."""

    requests: dict[str, int] = field(default_factory=dict)
    latency_sum_s: float = 0.0
    latency_count: int = 0
    first_token_sum_s: float = 0.0
    first_token_count: int = 0

    def copy(self) -> EngineStats:
        return EngineStats(
            dict(self.requests),
            self.latency_sum_s,
            self.latency_count,
            self.first_token_sum_s,
            self.first_token_count,
        )

    def record(self, outcome: str, seconds: float, first_token_s: float | None) -> None:
        self.requests[outcome] = self.requests.get(outcome, 0) + 1
        self.latency_sum_s += seconds
        self.latency_count += 1
        if first_token_s is not None:
            self.first_token_sum_s += first_token_s
            self.first_token_count += 1


@dataclass(frozen=True)
class OnnxCounts:
    """What the ONNX path did: models exported, and loads that stayed on torch because an
    export failed or did not match (each also logged once per model)."""

    exports: int = 0
    fallbacks: int = 0
    int8: int = 0
    """Loads serving an int8 graph (`HFBOT_ENGINE_ONNX=int8`)."""
    int8_fallbacks: int = 0
    """Loads that stayed on the float graph: the int8 one failed or answered unlike torch."""


@dataclass(frozen=True)
class PoolMetricsSnapshot:
    """The pool's counters at one moment. Keys of per-model maps are `task:model_id`."""

    queue_depth: Mapping[str, int]
    engines_up: Mapping[str, bool]
    accepting: bool
    loaded_models: tuple[str, ...]
    model_bytes: int
    memory_budget_bytes: int | None
    batch_sizes: Mapping[int, int]
    load_seconds: Mapping[str, float]
    latency_buckets: Mapping[float, int]
    latency_count: int
    latency_sum_s: float
    queue_wait_buckets: Mapping[float, int]
    queue_wait_sum_s: float
    loads: int
    load_failures: int
    evictions: int
    requests: int
    completed: int
    failed: int
    rejected_busy: int
    timed_out: int
    cancelled: int
    engines: Mapping[str, EngineStats] = field(default_factory=dict)
    onnx_exports: int = 0
    onnx_fallbacks: int = 0
    onnx_int8: int = 0
    onnx_int8_fallbacks: int = 0

    @property
    def total_queue_depth(self) -> int:
        return sum(self.queue_depth.values())

    @property
    def batches(self) -> int:
        return sum(self.batch_sizes.values())

    @property
    def mean_batch_size(self) -> float:
        """Requests served per model call: 1.0 means batching never grouped anything."""
        return (
            sum(size * n for size, n in self.batch_sizes.items()) / self.batches
            if self.batches
            else 0.0
        )


def _in_a_folder(model_id: str) -> bool:
    return model_id.startswith(("/", "./", "../", "~")) or "\\" in model_id


def public_model_id(model_id: str) -> str:
    """A model id fit for metrics and for users: a model in a local folder is named by the
    folder alone (`local/<name>`; on an engine, `<engine>:local/<name>`), so no filesystem
    path of the machine ever reaches /metrics or a chat."""
    engine, sep, name = model_id.partition(":")
    if sep and _in_a_folder(name) and not _in_a_folder(engine):
        return f"{engine}:{public_model_id(name)}"
    if _in_a_folder(model_id):
        return "local/" + model_id.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return model_id


def model_label(task: str, model_id: str) -> str:
    """`task:model` for the pool's per-model metrics."""
    return f"{task}:{public_model_id(model_id)}"


@dataclass
class PoolMetrics:
    """Counters and histograms of one pool; gauges are read live from the pool."""

    queue_depths: Callable[[], Mapping[str, int]] = dict
    engines_up: Callable[[], Mapping[str, bool]] = dict
    accepting: Callable[[], bool] = lambda: True
    loaded: Callable[[], tuple[str, ...]] = tuple
    model_bytes: Callable[[], int] = int
    memory_budget_bytes: Callable[[], int | None] = lambda: None
    onnx: Callable[[], OnnxCounts] = OnnxCounts
    batch_sizes: Counter[int] = field(default_factory=Counter)
    load_seconds: dict[str, float] = field(default_factory=dict)
    latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_S))
    queue_wait: Histogram = field(default_factory=lambda: Histogram(WAIT_BUCKETS_S))
    loads: int = 0
    load_failures: int = 0
    evictions: int = 0
    requests: int = 0
    completed: int = 0
    failed: int = 0
    rejected_busy: int = 0
    timed_out: int = 0
    cancelled: int = 0
    engines: dict[str, EngineStats] = field(default_factory=dict)

    def record_batch(self, size: int) -> None:
        self.batch_sizes[size] += 1

    def record_load(self, label: str, seconds: float) -> None:
        self.loads += 1
        self.load_seconds[label] = seconds

    def record_latency(self, seconds: float) -> None:
        self.latency.observe(seconds)

    def record_queue_wait(self, seconds: float) -> None:
        """How long a request waited in its model's queue before its batch started."""
        self.queue_wait.observe(seconds)

    def snapshot(self) -> PoolMetricsSnapshot:
        latency = self.latency.cumulative()
        onnx = self.onnx()
        return PoolMetricsSnapshot(
            queue_depth=dict(self.queue_depths()),
            engines_up=dict(self.engines_up()),
            accepting=self.accepting(),
            loaded_models=tuple(self.loaded()),
            model_bytes=self.model_bytes(),
            memory_budget_bytes=self.memory_budget_bytes(),
            batch_sizes=dict(sorted(self.batch_sizes.items())),
            load_seconds=dict(self.load_seconds),
            latency_buckets=latency,
            latency_count=latency[float("inf")],
            latency_sum_s=self.latency.sum,
            queue_wait_buckets=self.queue_wait.cumulative(),
            queue_wait_sum_s=self.queue_wait.sum,
            loads=self.loads,
            load_failures=self.load_failures,
            evictions=self.evictions,
            requests=self.requests,
            completed=self.completed,
            failed=self.failed,
            rejected_busy=self.rejected_busy,
            timed_out=self.timed_out,
            cancelled=self.cancelled,
            engines={name: stats.copy() for name, stats in self.engines.items()},
            onnx_exports=onnx.exports,
            onnx_fallbacks=onnx.fallbacks,
            onnx_int8=onnx.int8,
            onnx_int8_fallbacks=onnx.int8_fallbacks,
        )
