"""What daily quotas count: answered requests of one person since a moment, cached per chat."""

from __future__ import annotations

from datetime import timedelta

from models.base import utcnow
from models.store import SettingsStore


async def log(store: SettingsStore, user_id: int, chat_id: int | None, *, ok: bool = True) -> None:
    await store.log_usage(
        user_id=user_id,
        chat_id=chat_id,
        task="sentiment",
        model_id="m",
        latency_ms=10,
        ok=ok,
        error=None if ok else "error.pool_busy",
    )


async def test_only_answered_requests_count_everywhere_or_in_one_chat(
    store: SettingsStore,
) -> None:
    since = utcnow() - timedelta(minutes=1)
    await log(store, 1, 1)
    await log(store, 1, -5)
    await log(store, 1, -5, ok=False)
    await log(store, 2, -5)
    assert await store.served_since(1, since) == 2
    assert await store.served_since(1, since, chat_id=-5) == 1
    assert await store.served_since(1, utcnow() + timedelta(minutes=1)) == 0


async def test_cached_counts_follow_the_rows_this_process_logs(store: SettingsStore) -> None:
    since = utcnow() - timedelta(minutes=1)
    assert await store.served_since(1, since) == 0
    assert await store.served_since(1, since, chat_id=-5) == 0
    await log(store, 1, -5)
    await log(store, 1, None)
    await log(store, 1, -5, ok=False)
    assert await store.served_since(1, since) == 2
    assert await store.served_since(1, since, chat_id=-5) == 1
    fresh = SettingsStore(store.engine, rules=store._rules)
    assert await fresh.served_since(1, since) == 2, "the cache agrees with the database"
    assert await fresh.served_since(1, since, chat_id=-5) == 1
