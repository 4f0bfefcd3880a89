"""A busy bot: fair turns, a visible place in line, answers before anything else."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from bot.engine import onnx_export
from tests.support.harness import POSITIVE, RunningBot, answered_in_order


def one_batch_at_a_time(permits: threading.Semaphore, ran: list[list[Any]] | None = None) -> Any:
    """A loader whose models run a batch only when the test hands out a permit."""

    def load(task: str, model_id: str) -> Any:
        def run(inputs: list[Any], *, batch_size: int, **params: Any) -> list[Any]:
            if ran is not None:
                ran.append(list(inputs))
            assert permits.acquire(timeout=30)
            return [POSITIVE for _ in inputs]

        return run

    return load


def status_lines(bot: RunningBot, chat_id: int) -> list[dict[str, Any]]:
    return [
        call.result
        for call in bot.emu.calls
        if call.method == "sendMessage"
        and call.params.get("chat_id") == chat_id
        and str(call.params.get("text", "")).startswith("⏳")
    ]


async def test_a_waiting_request_shows_its_place_in_line_and_the_answer_replaces_it(
    bot: RunningBot,
) -> None:
    permits = threading.Semaphore(0)
    await bot.swap_pool(one_batch_at_a_time(permits), pool_max_batch_size=1, pool_max_wait_ms=0)
    bot.services.settings.queue_status_after_s = 0.2
    alice, bob, carol = bot.person("Alice"), bot.person("Bob"), bot.person("Carol")
    chats = {person.first_name: bot.emu.private_chat(person) for person in (alice, bob, carol)}
    bot.emu.send_message(alice, chats["Alice"], "/sentiment first")
    await bot.emu.wait_until(lambda: bot.services.pool.metrics.snapshot().batches == 1)
    bot.emu.send_message(bob, chats["Bob"], "/sentiment second")
    await bot.emu.wait_until(lambda: bot.services.pool.metrics.requests == 2)
    bot.emu.send_message(carol, chats["Carol"], "/sentiment third")
    await bot.emu.wait_for(
        "sendMessage", lambda call: call.params["text"].startswith("⏳"), count=2, since=0
    )
    [bobs_line] = status_lines(bot, chats["Bob"].id)
    [carols_line] = status_lines(bot, chats["Carol"].id)
    assert bobs_line["text"] == "⏳ #1 in line…"
    assert carols_line["text"] == "⏳ #2 in line…"

    permits.release()  # Alice's batch ends, Bob's starts: Carol moves up
    await bot.emu.wait_until(
        lambda: (
            bot.emu.edits(chats["Carol"].id, carols_line["message_id"])
            == ["⏳ #2 in line…", "⏳ #1 in line…"]
        )
    )
    permits.release(2)
    await bot.settle()

    for chat, line in ((chats["Bob"], bobs_line), (chats["Carol"], carols_line)):
        final = bot.emu.edits(chat.id, line["message_id"])[-1]
        assert final.startswith("POSITIVE"), "the status line became the answer"
        assert [m["message_id"] for m in bot.emu.sent_messages(chat.id)] == [line["message_id"]], (
            "no second message: the wait cost one message"
        )
    assert status_lines(bot, chats["Alice"].id) == [], "a request that never waited shows none"


async def test_a_quick_answer_gets_no_status_line(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    [reply] = await bot.ask(alice, chat, "/sentiment quick")
    assert reply.startswith(("POSITIVE", "NEGATIVE"))
    assert status_lines(bot, chat.id) == []


async def test_a_busy_group_gets_every_answer_in_order_without_a_single_429(
    bot: RunningBot,
) -> None:
    bot.emu.flood.enabled = True
    members = [bot.person(f"Member{n:02d}") for n in range(30)]
    group = bot.emu.create_chat("supergroup", "Busy", creator=members[0])
    asked: dict[int, str] = {}
    for number, member in enumerate(members):
        question = f"question {number:02d}"
        sent = bot.emu.send_message(member, group, f"/sentiment {question}")
        asked[sent["message_id"]] = question

    await bot.emu.wait_until(
        lambda: len(answered_in_order(bot.emu, group.id, asked)) == len(asked), timeout=60
    )

    assert answered_in_order(bot.emu, group.id, asked) == list(asked.values())
    assert bot.emu.flood.served == 0, "Telegram never had to say 'too many requests'"
    messages = bot.emu.sent_messages(group.id)
    assert len(messages) < len(asked), "answers ready together shared messages"
    shared = next(m for m in messages if m["text"].count("question") > 1)
    for block in shared["text"].split("\n\n"):
        quote, answer = block.split("\n", 1)
        assert quote.startswith("Member") and ": /sentiment question " in quote
        assert "%" in answer, "each answer under a quote of its asker"


async def test_a_first_request_is_answered_on_torch_while_the_onnx_export_waits_its_turn(
    bot: RunningBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody waits for an export: the answer comes from torch, then the export runs."""
    started, release = threading.Event(), threading.Event()
    export = onnx_export._export

    def slow_export(*args: Any) -> None:
        started.set()
        release.wait(30)
        export(*args)

    monkeypatch.setattr(onnx_export, "_export", slow_export)
    await bot.swap_pool(
        None,
        engine_onnx="auto",
        engine_onnx_cache_dir=tmp_path / "fresh",
        engine_onnx_quiet_s=0.0,
    )
    bot.services.settings.queue_status_after_s = 0.2
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    bot.emu.send_message(alice, chat, "/sentiment first use")
    [answer] = await bot.emu.wait_for(
        "sendMessage", lambda call: call.params["chat_id"] == chat.id, timeout=30
    )
    exporting = await asyncio.to_thread(started.wait, 30)
    answered_before_the_export = not release.is_set()
    release.set()
    await bot.settle()

    assert exporting and answered_before_the_export
    assert answer.result["text"].startswith(("POSITIVE", "NEGATIVE"))
    assert [m["text"] for m in bot.emu.sent_messages(chat.id)] == [answer.result["text"]]


async def test_one_persons_burst_does_not_hold_back_someone_elses_request(
    bot: RunningBot,
) -> None:
    permits = threading.Semaphore(0)
    ran: list[list[Any]] = []
    await bot.swap_pool(
        one_batch_at_a_time(permits, ran), pool_max_batch_size=1, pool_max_wait_ms=0
    )
    alice, bob = bot.person("Alice"), bot.person("Bob")
    for number in range(3):
        bot.emu.send_message(alice, bot.emu.private_chat(alice), f"/sentiment burst {number}")
    await bot.emu.wait_until(lambda: bot.services.pool.metrics.requests == 3)
    bot.emu.send_message(bob, bot.emu.private_chat(bob), "/sentiment just one")
    await bot.emu.wait_until(lambda: bot.services.pool.metrics.requests == 4)
    permits.release(4)
    await bot.settle()

    order = [text for batch in ran for text in batch]
    assert order[1] == "just one", "Bob's request ran in the batch after the one running"
    assert sorted(order[:1] + order[2:]) == ["burst 0", "burst 1", "burst 2"]
