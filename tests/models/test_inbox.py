"""The inbox's queries: an update recorded once, replayed once, in arrival order, then pruned."""

from __future__ import annotations

from datetime import timedelta

from models.base import utcnow
from models.store import Store

BOT = 7000000001


async def test_an_update_is_recorded_once_and_a_resent_one_is_recognised(
    store: Store,
) -> None:
    assert await store.inbox.accept(BOT, 1, 42, {"update_id": 1})
    assert not await store.inbox.accept(BOT, 1, 42, {"update_id": 1})
    assert await store.inbox.accept(BOT + 1, 1, 42, {"update_id": 1}), "another bot's update 1"


async def test_unanswered_updates_come_back_in_arrival_order_and_only_once(
    store: Store,
) -> None:
    for update_id, chat in [(5, 100), (6, 200), (7, 100), (8, 100)]:
        await store.inbox.accept(BOT, update_id, chat, {"update_id": update_id})
    await store.inbox.done(BOT, [6, 8])
    since = utcnow() - timedelta(minutes=10)

    found = await store.inbox.unanswered(BOT, since)

    assert [(item.update_id, item.chat_id) for item in found] == [(5, 100), (7, 100)]
    assert found[0].payload == {"update_id": 5}
    assert await store.inbox.unanswered(BOT, since) == [], "each is replayed at most once"


async def test_updates_older_than_the_window_are_not_replayed_and_pruning_counts_them(
    store: Store,
) -> None:
    await store.inbox.accept(BOT, 1, 42, {"update_id": 1})
    await store.inbox.accept(BOT, 2, 42, {"update_id": 2})
    await store.inbox.done(BOT, [2])
    assert await store.inbox.unanswered(BOT, utcnow() + timedelta(seconds=1)) == []

    done, given_up = await store.inbox.prune(BOT, utcnow() + timedelta(seconds=1))

    assert (done, given_up) == (1, 1)
    assert await store.inbox.accept(BOT, 1, 42, {"update_id": 1}), "the rows are gone"


async def test_pruning_keeps_rows_still_waiting_for_their_answer(store: Store) -> None:
    await store.inbox.accept(BOT, 1, 42, {"update_id": 1})
    await store.inbox.accept(BOT, 2, 42, {"update_id": 2})
    await store.inbox.done(BOT, [1])

    assert await store.inbox.prune(BOT, utcnow() - timedelta(minutes=10)) == (1, 0)
    [waiting] = await store.inbox.unanswered(BOT, utcnow() - timedelta(minutes=10))
    assert waiting.update_id == 2
