"""The inbox's queries: an update recorded once, replayed once, in arrival order, then pruned."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.tasks import param_rules_from_caps
from models.base import utcnow
from models.inbox import Claim
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


async def test_replicas_take_over_only_what_no_live_replica_holds_and_never_both(
    store: Store, database
) -> None:
    """Amy's replica holds update 1 (renewed) and let update 2's lease run out; Bob's and
    Carol's replicas, asking at once on their own connections, take update 2 once between
    them and leave update 1 alone."""
    now = utcnow()
    await store.inbox.accept(BOT, 1, 42, {"update_id": 1}, Claim("amy", now + timedelta(hours=1)))
    await store.inbox.accept(BOT, 2, 42, {"update_id": 2}, Claim("amy", now - timedelta(seconds=1)))
    other = Store(database.engine(), rules=param_rules_from_caps(256, 3))
    try:
        since = now - timedelta(minutes=10)
        later = now + timedelta(hours=1)
        bobs, carols = await asyncio.gather(
            store.inbox.unanswered(BOT, since, claim=Claim("bob", later)),
            other.inbox.unanswered(BOT, since, claim=Claim("carol", later)),
        )
    finally:
        await other.close()
    assert sorted(item.update_id for item in [*bobs, *carols]) == [2]


async def test_a_replica_that_renews_keeps_its_updates(store: Store) -> None:
    now = utcnow()
    await store.inbox.accept(BOT, 1, 42, {"update_id": 1}, Claim("amy", now - timedelta(seconds=1)))
    await store.inbox.renew(BOT, Claim("amy", now + timedelta(hours=1)))
    since = now - timedelta(minutes=10)
    assert await store.inbox.unanswered(BOT, since, claim=Claim("bob", now)) == []
    alone = await store.inbox.unanswered(BOT, since)
    assert [item.update_id for item in alone] == [1], "a bot alone after a restart takes all"
