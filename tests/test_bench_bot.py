"""bench_bot counts answers by content: merged answers and status lines must not fool it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from bench.bench_bot import AnswerWatcher, Ask, answers, group_floor, why_429
from bot.offline.emulator.world import ApiCall, FakeChat, FakeUser

LABELS = ("NEGATIVE", "POSITIVE")
GROUP = FakeChat(-1_000_000_000_001, "supergroup", title="Busy group")


def ask(number: int, text: str) -> Ask:
    user = FakeUser(1_000 + number, f"Member {number}", username=f"member_{number}")
    return Ask(user, GROUP, f"/sentiment {text}", message_id=number, sent_at=0.0)


def bot_message(message_id: int, text: str, **extra: Any) -> dict[str, Any]:
    return {"message_id": message_id, "chat": GROUP.to_dict(), "text": text, **extra}


def test_the_floor_is_twenty_a_minute_and_one_a_second() -> None:
    assert group_floor(1) == 0
    assert group_floor(20) == 19
    assert group_floor(25) == 64
    assert group_floor(60) == 139


def test_an_answer_counts_for_the_ask_it_replies_to_quotes_or_names() -> None:
    asks = [ask(1, "what a lovely day"), ask(2, "the film was bad"), ask(3, "so so")]
    reply = bot_message(10, "POSITIVE\n...", reply_to_message={"message_id": 1})
    assert answers(reply, asks, LABELS) == [asks[0]]
    merged = bot_message(
        11,
        "@member_2: NEGATIVE\nMember 3: POSITIVE\n«what a lovely day» POSITIVE",
        entities=[{"type": "text_mention", "offset": 0, "length": 1, "user": {"id": 1_003}}],
    )
    assert answers(merged, asks, LABELS) == asks


def test_a_status_line_is_not_an_answer_until_edited_into_one() -> None:
    [first] = asks = [ask(1, "what a lovely day")]
    watcher = AnswerWatcher(SimpleNamespace(calls=[]), LABELS)  # type: ignore[arg-type]
    watcher.open[GROUP.id] = list(asks)
    status = bot_message(20, "#3 in line", reply_to_message={"message_id": 1})
    watcher._see(ApiCall("sendMessage", {"chat_id": GROUP.id}, 1.0, None, status))
    assert first.answered_at is None
    answer = bot_message(20, "POSITIVE ▰▰▰", reply_to_message={"message_id": 1})
    watcher._see(ApiCall("editMessageText", {"chat_id": GROUP.id}, 2.0, None, answer))
    assert (first.answered_at, first.answer_message_id) == (2.0, 20)
    assert watcher.open[GROUP.id] == []


def test_each_429_is_put_down_to_the_window_that_was_full() -> None:
    sent = [ApiCall("sendMessage", {"chat_id": 5 + i}, 0.01 * i, None, {}) for i in range(30)]
    over = ApiCall("sendMessage", {"chat_id": 99}, 0.5, "Too Many Requests: retry after 1")
    again = ApiCall("sendMessage", {"chat_id": 6}, 1.005, "Too Many Requests: retry after 1")
    assert why_429([*sent, over, again]) == {"overall 30/s": 1, "1/s in the chat": 1}
