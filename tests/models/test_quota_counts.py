"""What daily quotas count: answered requests of one person since a moment, cached per chat, and
the requests still running, held in one step with the check."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from models.base import utcnow
from models.store import Store
from models.usage import QuotaRoom, UsageLog


async def served(usage: UsageLog, counted: int, since: datetime, chat_id: int | None = None) -> int:
    """What a daily quota counts: requests answered, and held by requests still running."""
    return await usage.answered_since(counted, since, chat_id=chat_id) + await usage.held(
        counted, chat_id
    )


async def log(store: Store, user_id: int, chat_id: int | None, *, ok: bool = True) -> None:
    await store.usage.log(
        user_id=user_id,
        chat_id=chat_id,
        task="sentiment",
        model_id="m",
        latency_ms=10,
        ok=ok,
        error=None if ok else "error.pool_busy",
    )


async def test_only_answered_requests_count_everywhere_or_in_one_chat(
    store: Store,
) -> None:
    since = utcnow() - timedelta(minutes=1)
    await log(store, 1, 1)
    await log(store, 1, -5)
    await log(store, 1, -5, ok=False)
    await log(store, 2, -5)
    assert await served(store.usage, 1, since) == 2
    assert await served(store.usage, 1, since, chat_id=-5) == 1
    assert await served(store.usage, 1, utcnow() + timedelta(minutes=1)) == 0


async def test_cached_counts_follow_the_rows_this_process_logs(store: Store) -> None:
    since = utcnow() - timedelta(minutes=1)
    assert await served(store.usage, 1, since) == 0
    assert await served(store.usage, 1, since, chat_id=-5) == 0
    await log(store, 1, -5)
    await log(store, 1, None)
    await log(store, 1, -5, ok=False)
    assert await served(store.usage, 1, since) == 2
    assert await served(store.usage, 1, since, chat_id=-5) == 1
    fresh_store = Store(store.engine, rules=store.preferences._rules)
    assert await served(fresh_store.usage, 1, since) == 2, "the cache agrees with the database"
    assert await served(fresh_store.usage, 1, since, chat_id=-5) == 1


async def test_a_held_request_counts_until_its_own_task_logs_it(store: Store) -> None:
    since = utcnow() - timedelta(minutes=1)
    held, go = asyncio.Event(), asyncio.Event()

    async def request(chat_id: int, *, ok: bool) -> None:
        await store.usage.hold_served(1, chat_id, [], for_s=60)
        held.set()
        await go.wait()
        await log(store, 1, chat_id, ok=ok)

    first = asyncio.create_task(request(-5, ok=True))
    await held.wait()
    await store.usage.hold_served(1, -7, [], for_s=60)  # this task's own request
    assert await served(store.usage, 1, since) == 2
    assert await served(store.usage, 1, since, chat_id=-5) == 1
    assert await served(store.usage, 1, since, chat_id=-6) == 0
    go.set()
    await first
    assert await served(store.usage, 1, since) == 2, "-5 is a row now; -7 is still held"
    assert await served(store.usage, 1, since, chat_id=-5) == 1
    await asyncio.create_task(request(-6, ok=False))
    assert await served(store.usage, 1, since) == 2, "a failure is released and not counted"
    await log(store, 1, -7)
    assert await served(store.usage, 1, since) == 2, "the hold of -7 became its row"
    assert await served(store.usage, 1, since, chat_id=-7) == 1


async def test_a_hold_never_released_lapses(store: Store) -> None:
    now = [0.0]
    timed = Store(store.engine, rules=store.preferences._rules, clock=lambda: now[0])
    since = utcnow() - timedelta(minutes=1)
    await timed.usage.hold_served(1, 1, [], for_s=30)
    assert await served(timed.usage, 1, since) == 1
    now[0] = 31.0
    assert await served(timed.usage, 1, since) == 0


async def test_what_is_sent_as_a_chat_counts_against_the_chat_it_was_posted_in(
    store: Store, database
) -> None:
    since = utcnow() - timedelta(minutes=1)
    assert await served(store.usage, -100, since) == 0, "read (and cached) before the rows"
    for channel in (-201, -202, -100):  # two channels and an anonymous admin, in group -100
        await log(store, channel, -100)
    await log(store, -201, -300)  # the first channel, in another group
    await log(store, 7, -100)  # a person, as themselves
    assert await served(store.usage, -100, since) == 3
    assert await served(store.usage, -100, since, chat_id=-100) == 3
    assert await served(store.usage, -300, since) == 1
    assert await served(store.usage, 7, since) == 1
    fresh = Store(database.engine(), rules=store.preferences._rules)
    try:
        assert await served(fresh.usage, -100, since) == 3, "the cache agrees with the database"
    finally:
        await fresh.close()


async def test_two_requests_arriving_together_cannot_both_take_the_last_place(store: Store) -> None:
    since = utcnow() - timedelta(minutes=1)
    await log(store, 1, -5)
    answered = await store.usage.answered_since(1, since)
    rooms = [QuotaRoom(limit=2, chat_id=None, answered=answered)]

    async def ask() -> int | None:
        return await store.usage.hold_served(1, -5, rooms, for_s=60)

    assert sorted(await asyncio.gather(ask(), ask()), key=str) == [0, None]
    assert await served(store.usage, 1, since) == 2


async def test_a_group_quota_refuses_in_its_group_only(store: Store) -> None:
    since = utcnow() - timedelta(minutes=1)
    everywhere = QuotaRoom(limit=5, chat_id=None, answered=0)
    in_group = QuotaRoom(limit=1, chat_id=-5, answered=0)
    assert await store.usage.hold_served(1, -5, [everywhere, in_group], for_s=60) is None
    assert await asyncio.create_task(
        store.usage.hold_served(1, -5, [everywhere, in_group], for_s=60)
    ) == 1, "the group's room is full"
    elsewhere = QuotaRoom(limit=1, chat_id=-6, answered=0)
    assert await asyncio.create_task(
        store.usage.hold_served(1, -6, [everywhere, elsewhere], for_s=60)
    ) is None
    assert await served(store.usage, 1, since) == 2
