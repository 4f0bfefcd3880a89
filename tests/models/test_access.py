"""Grants, revocations and invite codes on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from bot.tasks import param_rules_from_caps
from models.access import AccessGrant, InviteCode
from models.base import utcnow
from models.store import Store


def fresh_store(database) -> Store:
    """Another store with its own engine on the same database: another process, in effect."""
    return Store(database.engine(), rules=param_rules_from_caps(256, 3))


async def test_a_fresh_database_restricts_no_one(store: Store) -> None:
    assert await store.access.restricted() is False
    assert await store.access.decision(42) is None


async def test_grants_and_revocations_are_stored_and_survive_a_new_store(
    store: Store, database
) -> None:
    await store.access.decide(42, True, by=1)
    await store.access.decide(-100200, True, by=1)
    assert await store.access.decision(42) is True
    await store.access.decide(42, False, by=1)
    assert await store.access.decision(42) is False, "the write is seen at once, not after the TTL"
    assert await store.access.restricted() is True

    restarted = fresh_store(database)
    try:
        assert await restarted.access.decision(42) is False
        assert await restarted.access.decision(-100200) is True
        assert await restarted.access.restricted() is True
    finally:
        await restarted.close()


async def test_an_invite_makes_the_bot_private_and_grants_whoever_redeems_it(
    store: Store,
) -> None:
    await store.access.create_invite("code-1", 2, None, by=1)
    assert await store.access.restricted() is True
    assert await store.access.redeem_invite("code-1", 10) is True
    assert await store.access.redeem_invite("code-1", 11) is True
    assert await store.access.redeem_invite("code-1", 12) is False, "two uses, then no more"
    assert await store.access.redeem_invite("no-such-code", 13) is False
    assert [await store.access.decision(user) for user in (10, 11, 12, 13)] == [
        True,
        True,
        None,
        None,
    ]
    invite = await store.access.get_invite("code-1")
    assert invite is not None and invite.uses == 2


async def test_redeeming_never_undoes_a_revocation_and_takes_no_use(
    store: Store,
) -> None:
    await store.access.create_invite("shared", 5, None, by=1)
    await store.access.decide(10, False, by=1)
    assert await store.access.redeem_invite("shared", 10) is False
    assert await store.access.decision(10) is False
    await store.access.create_invite("spent", 1, None, by=1)
    assert await store.access.redeem_invite("spent", 11) is True
    assert await store.access.redeem_invite("spent", 12) is False
    assert await store.access.decision(12) is None, "a code used up grants nothing"
    invites = [await store.access.get_invite(code) for code in ("shared", "spent")]
    assert [invite.uses for invite in invites if invite is not None] == [0, 1]


async def test_an_expired_invite_is_refused(store: Store) -> None:
    await store.access.create_invite("old", 5, utcnow() - timedelta(seconds=1), by=1)
    await store.access.create_invite("fresh", 5, utcnow() + timedelta(hours=1), by=1)
    assert await store.access.redeem_invite("old", 10) is False
    assert await store.access.redeem_invite("fresh", 10) is True


async def test_a_single_use_code_redeemed_by_many_at_once_lets_exactly_one_in(
    store: Store, database
) -> None:
    await store.access.create_invite("once", 1, None, by=1)
    racers = [fresh_store(database) for _ in range(6)]
    try:
        results = await asyncio.gather(
            *(racer.access.redeem_invite("once", 100 + index) for index, racer in enumerate(racers))
        )
    finally:
        await asyncio.gather(*(racer.close() for racer in racers))
    assert sorted(results) == [False] * 5 + [True]
    async with store.database.session(read_only=True) as session:
        granted = (
            await session.execute(select(func.count()).select_from(AccessGrant))
        ).scalar_one()
    assert granted == 1
    invite = await store.access.get_invite("once")
    assert invite is not None and invite.uses == 1


async def test_one_person_redeeming_a_shared_code_many_times_at_once_takes_one_use(
    store: Store, database
) -> None:
    await store.access.create_invite("shared", 5, None, by=1)
    racers = [fresh_store(database) for _ in range(6)]
    try:
        results = await asyncio.gather(*(racer.access.redeem_invite("shared", 100) for racer in racers))
    finally:
        await asyncio.gather(*(racer.close() for racer in racers))
    assert results == [True] * 6, "each of them finds the person let in"
    invite = await store.access.get_invite("shared")
    assert invite is not None and invite.uses == 1
    assert await store.access.redeem_invite("shared", 101) is True, "the other uses are left for others"


async def test_an_invite_asked_for_by_one_message_is_made_once(store: Store) -> None:
    first = await store.access.create_invite("code-a", 3, None, by=1, requested_in="9:1:77")
    again = await store.access.create_invite("code-b", 5, None, by=1, requested_in="9:1:77")
    other = await store.access.create_invite("code-c", 1, None, by=1, requested_in="9:1:78")
    assert (again.code, again.max_uses) == (first.code, first.max_uses) == ("code-a", 3)
    assert other.code == "code-c"
    async with store.database.session(read_only=True) as session:
        codes = (await session.execute(select(InviteCode.code))).scalars().all()
    assert sorted(codes) == ["code-a", "code-c"]
