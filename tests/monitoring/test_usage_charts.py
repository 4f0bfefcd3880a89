"""The /stats chart: drawn for an empty period, one request or thousands, fast and phone-sized."""

from __future__ import annotations

import io
import random
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import insert

from bot.monitoring.usage_charts import render_usage_chart
from bot.tasks import TASKS, param_rules_from_caps
from models import migrate
from models.base import utcnow
from models.database import create_engine
from models.store import Store
from models.usage import WINDOWS, UsageRecord, UsageSeries, step_for

# Telegram's sendPhoto limits: 10 MB, width + height at most 10000, ratio at most 20.
MAX_PHOTO_BYTES = 10 * 1000 * 1000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'usage.db'}")
    await migrate.upgrade(engine)
    store = Store(engine, rules=param_rules_from_caps(256, 3))
    try:
        yield store
    finally:
        await store.close()


async def log_requests(store: Store, count: int, span: timedelta) -> None:
    """`count` requests spread over the last `span`, by 40 people over every task, 5% failing."""
    rng = random.Random(19)
    now = utcnow()
    rows = [
        {
            "created_at": now - span * rng.random(),
            "user_id": rng.randint(1, 40),
            "chat_id": 1,
            "task": rng.choice(list(TASKS)),
            "model_id": "m",
            "latency_ms": rng.lognormvariate(5, 1),
            "ok": rng.random() > 0.05,
        }
        for _ in range(count)
    ]
    async with store.database.session() as session:
        await session.execute(insert(UsageRecord), rows)


async def series_of(store: Store, window: str) -> UsageSeries:
    until = utcnow()
    return await store.usage.series(until - WINDOWS[window], until, step_for(WINDOWS[window]))


def fits_telegram(png: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    width, height = image.size
    assert len(png) <= MAX_PHOTO_BYTES
    assert width + height <= 10000 and max(width, height) / min(width, height) <= 20
    return width, height


async def test_an_empty_period_is_drawn_with_its_time_axis(store: Store) -> None:
    series = await series_of(store, "7d")
    assert series.summary.requests == 0
    assert len(series.total) >= 28, "a week in 6-hour steps"
    assert fits_telegram(render_usage_chart(series, "All chats · last 7d")) == (1080, 1350)


async def test_one_request_is_drawn(store: Store) -> None:
    await log_requests(store, 1, timedelta(hours=1))
    series = await series_of(store, "24h")
    assert series.summary.requests == 1
    assert sum(bucket.requests for bucket in series.total) == 1
    fits_telegram(render_usage_chart(series, "All chats · last 24h"))


async def test_thousands_of_requests_over_a_month_render_in_under_a_second(
    store: Store,
) -> None:
    await log_requests(store, 5000, WINDOWS["30d"])
    series = await series_of(store, "30d")
    assert series.summary.requests == 5000
    assert len(series.by_task) == len(TASKS), "more tasks than colours: the rest become 'other'"
    render_usage_chart(await series_of(store, "24h"), "warm-up")  # fonts load once per process
    started = time.perf_counter()
    png = render_usage_chart(series, "All chats · last 30d")
    assert time.perf_counter() - started < 1.0
    fits_telegram(png)
