"""The access rule, case by case: admins, chats over people, the database over the lists."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bot.admission.access_policy import DAY_S, AccessPolicy, OncePerDay, Subject, Verdict
from bot.config import Settings
from bot.errors import StoreUnavailable

ADMIN, ALICE, BOB = 1, 10, 11
GROUP, OTHER_GROUP = -100, -200


@dataclass
class StoreStandIn:
    """What the policy reads of the access book: decisions by id, and whether any exist."""

    decisions: dict[int, bool] = field(default_factory=dict)
    invites: bool = False
    down: bool = False
    restricted_last_seen: bool | None = None

    async def restricted(self) -> bool:
        if self.down:
            raise StoreUnavailable()
        self.restricted_last_seen = bool(self.decisions) or self.invites
        return self.restricted_last_seen

    async def decision(self, subject_id: int) -> bool | None:
        if self.down:
            raise StoreUnavailable()
        return self.decisions.get(subject_id)


def policy(store: StoreStandIn, **lists: list[int]) -> AccessPolicy:
    settings = Settings(_env_file=None, admin_ids=[ADMIN], **lists)
    return AccessPolicy(settings, store)  # type: ignore[arg-type]


def person(owner: int) -> Subject:
    return Subject(owner, owner, shared_chat=False)


def in_group(owner: int, group: int = GROUP) -> Subject:
    return Subject(owner, group, shared_chat=True)


@pytest.mark.parametrize(
    ("lists", "decisions", "invites", "subject", "expected"),
    [
        ({}, {}, False, person(BOB), Verdict.ALLOWED),  # public: no list, nothing stored
        ({}, {}, False, in_group(BOB), Verdict.ALLOWED),
        ({"allowed_users": [ALICE]}, {}, False, person(ALICE), Verdict.ALLOWED),
        ({"allowed_users": [ALICE]}, {}, False, person(BOB), Verdict.REFUSED),
        ({"allowed_users": [ALICE]}, {}, False, person(ADMIN), Verdict.ALLOWED),  # admins always
        ({"allowed_users": [ALICE]}, {}, False, in_group(ADMIN), Verdict.ALLOWED),
        ({"allowed_users": [ALICE]}, {}, False, in_group(ALICE), Verdict.REFUSED),  # chat judged
        ({"allowed_groups": [GROUP]}, {}, False, in_group(BOB), Verdict.ALLOWED),
        ({"allowed_groups": [GROUP]}, {}, False, in_group(BOB, OTHER_GROUP), Verdict.REFUSED),
        ({"allowed_groups": [GROUP]}, {}, False, person(BOB), Verdict.REFUSED),
        ({}, {BOB: True}, False, person(BOB), Verdict.ALLOWED),  # a grant makes the bot private
        ({}, {BOB: True}, False, person(ALICE), Verdict.REFUSED),
        ({}, {}, True, person(ALICE), Verdict.REFUSED),  # so does an invite code
        ({"allowed_users": [BOB]}, {BOB: False}, False, person(BOB), Verdict.REFUSED),  # revoked
        ({}, {GROUP: True}, False, in_group(BOB), Verdict.ALLOWED),
        ({}, {GROUP: False, BOB: True}, False, in_group(BOB), Verdict.REFUSED),
    ],
)
async def test_the_verdict(
    lists: dict[str, list[int]],
    decisions: dict[int, bool],
    invites: bool,
    subject: Subject,
    expected: Verdict,
) -> None:
    store = StoreStandIn(decisions, invites)
    assert await policy(store, **lists).verdict(subject) is expected


async def test_without_the_database_the_lists_hold_and_nothing_else_is_guessed() -> None:
    store = StoreStandIn({ALICE: True})
    access = policy(store, allowed_users=[BOB])
    await access.warm()
    store.down = True
    assert await access.verdict(person(BOB)) is Verdict.ALLOWED
    assert await access.verdict(person(ADMIN)) is Verdict.ALLOWED
    assert await access.verdict(person(ALICE)) is Verdict.UNKNOWN, "her grant cannot be read"


async def test_a_bot_last_seen_public_stays_public_while_the_database_is_down() -> None:
    store = StoreStandIn()
    access = policy(store)
    await access.warm()
    store.down = True
    assert await access.verdict(person(BOB)) is Verdict.ALLOWED
    never_seen = policy(StoreStandIn(down=True))
    await never_seen.warm()
    assert await never_seen.verdict(person(BOB)) is Verdict.UNKNOWN


def test_once_per_day_remembers_a_bounded_number_of_people() -> None:
    now = [0.0]
    told = OncePerDay(max_entries=2, clock=lambda: now[0])
    assert told.due(1) and not told.due(1)
    now[0] = DAY_S - 1
    assert not told.due(1)
    now[0] = DAY_S
    assert told.due(1), "a day later, one more line"
    assert told.due(2) and told.due(3)
    assert told.due(1), "the oldest was forgotten to stay within max_entries"
