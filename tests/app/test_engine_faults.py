"""A pipeline that raises mid-batch: only the request that broke it gets an error.

Other engine faults are covered where their code lives: a model that fails to
load (tests/app/test_failures.py, tests/engine/test_pool.py), a saturated
executor and full queue answering busy (test_failures.py, test_pool.py), a
remote engine going away mid-stream (tests/app/test_remote_engine.py).
"""

from __future__ import annotations

from typing import Any

from tests.support.harness import POSITIVE, RunningBot

GENERIC_ERROR = "Something went wrong on my side. Please try again."


async def test_a_batch_that_raises_fails_only_the_request_that_broke_it(bot: RunningBot) -> None:
    batches: list[int] = []

    def fragile(task: str, model_id: str) -> Any:
        def run(inputs: list[Any], *, batch_size: int, **params: Any) -> list[Any]:
            batches.append(len(inputs))
            if any("boom" in str(text) for text in inputs):
                raise RuntimeError("the pipeline fell over")
            return [POSITIVE for _ in inputs]

        return run

    await bot.swap_pool(fragile, pool_max_wait_ms=300)
    alice, bob, carol = bot.person("Alice"), bot.person("Bob"), bot.person("Carol")
    since = len(bot.emu.calls)
    bot.emu.send_message(alice, bot.emu.private_chat(alice), "/sentiment boom")
    bot.emu.send_message(bob, bot.emu.private_chat(bob), "/sentiment a fine day")
    await bot.emu.wait_for("sendMessage", count=2, since=since, timeout=30)
    [later] = await bot.ask(carol, bot.emu.private_chat(carol), "/sentiment later on")

    assert [m["text"] for m in bot.emu.sent_messages(alice.id)] == [GENERIC_ERROR]
    [bobs] = bot.emu.sent_messages(bob.id)
    assert bobs["text"].startswith("POSITIVE")
    assert later.startswith("POSITIVE")
    assert batches[:3] == [2, 1, 1], "one batch of two, then each request alone"
