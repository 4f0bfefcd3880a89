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


@dataclass(frozen=True)
class OnnxCounts:
    """What the ONNX path did: models exported, and loads that stayed on torch because an
    export failed or did not match (each also logged once per model)."""

    exports: int = 0
    fallbacks: int = 0


@dataclass(frozen=True)
class PoolMetricsSnapshot:
    """The pool's counters at one moment. Keys of per-model maps are `task:model_id`."""

    queue_depth: Mapping[str, int]
    loaded_models: tuple[str, ...]
    batch_sizes: Mapping[int, int]
    load_seconds: Mapping[str, float]
    latency_buckets: Mapping[float, int]
    latency_count: int
    latency_sum_s: float
    loads: int
    load_failures: int
    evictions: int
    requests: int
    completed: int
    failed: int
    rejected_busy: int
    timed_out: int
    cancelled: int
    onnx_exports: int = 0
    onnx_fallbacks: int = 0

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


def model_label(task: str, model_id: str) -> str:
    """`task:model` for metrics; a model in a local folder is named by the folder alone,
    so no filesystem path of the machine ever reaches /metrics."""
    if model_id.startswith(("/", "./", "../", "~")) or "\\" in model_id:
        model_id = "local/" + model_id.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return f"{task}:{model_id}"


@dataclass
class PoolMetrics:
    """Counters and histograms of one pool; gauges are read live from the pool."""

    queue_depths: Callable[[], Mapping[str, int]] = dict
    loaded: Callable[[], tuple[str, ...]] = tuple
    onnx: Callable[[], OnnxCounts] = OnnxCounts
    batch_sizes: Counter[int] = field(default_factory=Counter)
    load_seconds: dict[str, float] = field(default_factory=dict)
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    latency_sum_s: float = 0.0
    loads: int = 0
    load_failures: int = 0
    evictions: int = 0
    requests: int = 0
    completed: int = 0
    failed: int = 0
    rejected_busy: int = 0
    timed_out: int = 0
    cancelled: int = 0

    def record_batch(self, size: int) -> None:
        self.batch_sizes[size] += 1

    def record_load(self, label: str, seconds: float) -> None:
        self.loads += 1
        self.load_seconds[label] = seconds

    def record_latency(self, seconds: float) -> None:
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.latency_sum_s += seconds

    def snapshot(self) -> PoolMetricsSnapshot:
        cumulative: dict[float, int] = {}
        running = 0
        for bound, count in zip(
            (*LATENCY_BUCKETS_S, float("inf")), self.latency_counts, strict=True
        ):
            running += count
            cumulative[bound] = running
        onnx = self.onnx()
        return PoolMetricsSnapshot(
            queue_depth=dict(self.queue_depths()),
            loaded_models=tuple(self.loaded()),
            batch_sizes=dict(sorted(self.batch_sizes.items())),
            load_seconds=dict(self.load_seconds),
            latency_buckets=cumulative,
            latency_count=running,
            latency_sum_s=self.latency_sum_s,
            loads=self.loads,
            load_failures=self.load_failures,
            evictions=self.evictions,
            requests=self.requests,
            completed=self.completed,
            failed=self.failed,
            rejected_busy=self.rejected_busy,
            timed_out=self.timed_out,
            cancelled=self.cancelled,
            onnx_exports=onnx.exports,
            onnx_fallbacks=onnx.fallbacks,
        )
