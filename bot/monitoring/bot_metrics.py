"""Prometheus metrics: what the bot counts itself, plus the pool's numbers read at scrape time.

Each bot process has its own registry, so tests (and two bots in one process)
never share counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from bot.engine.metrics import PoolMetricsSnapshot, public_model_id

REQUEST_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class PoolCollector(Collector):
    """Exposes a PipelinePool's snapshot without the pool knowing about Prometheus."""

    def __init__(self, snapshot: Callable[[], PoolMetricsSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        snap = self._snapshot()
        depth = GaugeMetricFamily(
            "hfbot_pool_queue_depth", "Requests waiting per model", labels=["model"]
        )
        for model, value in snap.queue_depth.items():
            depth.add_metric([model], value)
        yield depth
        yield GaugeMetricFamily(
            "hfbot_pool_up", "1 while the pool takes requests", value=int(snap.accepting)
        )
        engines = GaugeMetricFamily(
            "hfbot_pool_engine_up", "1 while a model's engine can serve", labels=["model"]
        )
        for model, up in snap.engines_up.items():
            engines.add_metric([model], int(up))
        yield engines
        yield GaugeMetricFamily(
            "hfbot_pool_loaded_models", "Models in memory", value=len(snap.loaded_models)
        )
        yield GaugeMetricFamily(
            "hfbot_pool_model_bytes",
            "Memory the loaded models were measured to use",
            value=snap.model_bytes,
        )
        if snap.memory_budget_bytes is not None:
            yield GaugeMetricFamily(
                "hfbot_pool_memory_budget_bytes",
                "Memory the loaded models may use together",
                value=snap.memory_budget_bytes,
            )
        batches = CounterMetricFamily(
            "hfbot_pool_batches", "Model calls by batch size", labels=["size"]
        )
        for size, count in snap.batch_sizes.items():
            batches.add_metric([str(size)], count)
        yield batches
        load = GaugeMetricFamily(
            "hfbot_pool_model_load_seconds", "Last load time per model", labels=["model"]
        )
        for model, seconds in snap.load_seconds.items():
            load.add_metric([model], seconds)
        yield load
        outcomes = CounterMetricFamily(
            "hfbot_pool_requests", "Pool requests by outcome", labels=["outcome"]
        )
        for outcome in ("completed", "failed", "rejected_busy", "timed_out", "cancelled"):
            outcomes.add_metric([outcome], getattr(snap, outcome))
        yield outcomes
        yield CounterMetricFamily("hfbot_pool_model_loads", "Model loads", value=snap.loads)
        yield CounterMetricFamily(
            "hfbot_pool_model_load_failures", "Failed model loads", value=snap.load_failures
        )
        yield CounterMetricFamily("hfbot_pool_evictions", "Models evicted", value=snap.evictions)
        yield CounterMetricFamily(
            "hfbot_pool_onnx_exports", "Models exported to ONNX", value=snap.onnx_exports
        )
        yield CounterMetricFamily(
            "hfbot_pool_onnx_fallbacks",
            "Loads kept on torch because the ONNX export failed or did not match",
            value=snap.onnx_fallbacks,
        )
        yield CounterMetricFamily(
            "hfbot_pool_onnx_int8", "Model loads serving an int8 ONNX graph", value=snap.onnx_int8
        )
        yield CounterMetricFamily(
            "hfbot_pool_onnx_int8_fallbacks",
            "Loads kept on the float ONNX graph because the int8 one failed or answered unlike torch",
            value=snap.onnx_int8_fallbacks,
        )
        latency = HistogramMetricFamily("hfbot_pool_latency_seconds", "Time from submit to result")
        latency.add_metric(
            [],
            buckets=[(_bound(b), n) for b, n in snap.latency_buckets.items()],
            sum_value=snap.latency_sum_s,
        )
        yield latency
        wait = HistogramMetricFamily(
            "hfbot_pool_queue_wait_seconds", "Time a request waited in its queue for a batch"
        )
        wait.add_metric(
            [],
            buckets=[(_bound(b), n) for b, n in snap.queue_wait_buckets.items()],
            sum_value=snap.queue_wait_sum_s,
        )
        yield wait
        yield from _engine_metrics(snap)


def _engine_metrics(
    snap: PoolMetricsSnapshot,
) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    """Per remote engine: requests by outcome, and the sums behind mean latency and first token."""
    requests = CounterMetricFamily(
        "hfbot_engine_requests",
        "Requests to remote engines by outcome",
        labels=["engine", "outcome"],
    )
    latency = CounterMetricFamily(
        "hfbot_engine_latency_seconds", "Time remote requests took, summed", labels=["engine"]
    )
    first = CounterMetricFamily(
        "hfbot_engine_first_token_seconds",
        "Time to the first streamed token of remote requests, summed",
        labels=["engine"],
    )
    counted = CounterMetricFamily(
        "hfbot_engine_first_tokens", "Remote requests that streamed a token", labels=["engine"]
    )
    finished = CounterMetricFamily(
        "hfbot_engine_finished", "Remote requests that ended (any outcome)", labels=["engine"]
    )
    for name, stats in snap.engines.items():
        for outcome, count in stats.requests.items():
            requests.add_metric([name, outcome], count)
        latency.add_metric([name], stats.latency_sum_s)
        finished.add_metric([name], stats.latency_count)
        first.add_metric([name], stats.first_token_sum_s)
        counted.add_metric([name], stats.first_token_count)
    yield from (requests, latency, finished, first, counted)


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


class BotMetrics:
    """The counters handlers and the Telegram request layer update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "hfbot_updates", "Updates received", ["kind"], registry=self.registry
        )
        self.commands = Counter(
            "hfbot_commands",
            "Commands answered by task, model and outcome",
            ["task", "model", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hfbot_command_seconds",
            "Time from update to reply per task",
            ["task"],
            buckets=REQUEST_BUCKETS_S,
            registry=self.registry,
        )
        self.telegram_errors = Counter(
            "hfbot_telegram_api_errors",
            "Failed Bot API calls (429 means Telegram asked to retry)",
            ["method", "code"],
            registry=self.registry,
        )
        self.access_refusals = Counter(
            "hfbot_access_refusals",
            "Updates refused because the bot is private, by what was judged (user or chat)",
            ["subject"],
            registry=self.registry,
        )

    def watch_pool(self, snapshot: Callable[[], PoolMetricsSnapshot]) -> None:
        self.registry.register(PoolCollector(snapshot))

    def command(self, task: str, model: str, outcome: str, seconds: float) -> None:
        """Count one answered command; a model in a local folder is named by the folder only."""
        self.commands.labels(task, public_model_id(model), outcome).inc()
        self.latency.labels(task).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
