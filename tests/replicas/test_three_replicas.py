"""Three `hfbot run` processes, one bot: behind HAProxy, on one PostgreSQL and one Redis.

Telegram is the project's emulator with flood control on (Telegram's own limits), and
it delivers every update to HAProxy's one webhook URL, which hands them round-robin to
the three replicas. A burst of private requests and a busy group is answered with no
429, each chat's answers in order; one replica is killed with SIGKILL mid-burst, and
the others answer what it had accepted once its claims run out; a setting saved
through one replica is in force on the next request, wherever it lands.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bot.offline.bot_process import BotProcess, bot_environment
from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.world import JsonDict
from bot.offline.load_balancer import HAPROXY, free_port, haproxy
from tests.support.crash import replies_to
from tests.support.harness import answered_in_order, tiny_default_models
from tests.support.replica_processes import started

REDIS = "redis://127.0.0.1:6379/0"
REPLICAS = 3
LEASE_S = 3.0

pytestmark = pytest.mark.skipif(
    HAPROXY is None, reason="HAProxy is not installed (apt-get install haproxy; .ci/run does)"
)


async def test_three_replicas_answer_a_burst_in_order_with_no_429_and_survive_a_kill(
    tmp_path: Path, tiny_models_dir: Path, postgres_database: str
) -> None:
    token = f"{random.randrange(7 * 10**9, 8 * 10**9)}:replica-test-token"
    async with BotApiEmulator(token) as emu:
        emu.flood.enabled = True
        ports = [free_port() for _ in range(REPLICAS)]
        async with haproxy(tmp_path, ports) as balancer:
            replicas = []
            for n, port in enumerate(ports):
                env = bot_environment(
                    emu,
                    postgres_database,
                    tiny_default_models(tiny_models_dir),
                    port,
                    HFBOT_REDIS_URL=REDIS,
                    HFBOT_INBOX_LEASE_S=str(LEASE_S),
                    HFBOT_POOL_MAX_WAIT_MS="200",
                )
                env["HFBOT_WEBHOOK_URL"] = f"http://127.0.0.1:{balancer}"
                workdir = tmp_path / f"replica{n}"
                workdir.mkdir()
                replicas.append(BotProcess(emu, env, workdir))
            async with started(replicas):

                people = [emu.create_user(f"P{n}") for n in range(40)]
                group = emu.create_chat("supergroup", "Busy group", creator=people[0])
                sent: list[JsonDict] = []
                asked: dict[int, str] = {}
                for round_ in range(3):
                    for n, person in enumerate(people):
                        chat = emu.private_chat(person)
                        sent.append(emu.send_message(person, chat, f"/sentiment {round_} of {n} fine"))
                    for person in people[round_ * 4 : round_ * 4 + 4]:
                        question = f"group question {len(asked):02d}"
                        message = emu.send_message(person, group, f"/sentiment {question}")
                        asked[message["message_id"]] = question

                def all_answered() -> bool:
                    in_group = answered_in_order(emu, group.id, asked)
                    return all(replies_to(emu, m) for m in sent) and set(in_group) == set(
                        asked.values()
                    )

                await emu.wait_until(lambda: sum(bool(replies_to(emu, m)) for m in sent) >= 20, 120)
                replicas[1].kill()
                await replicas[1].wait()
                try:
                    await emu.wait_until(all_answered, 180)
                except TimeoutError:
                    left = [m for m in sent if not replies_to(emu, m)]
                    chats = {m["chat"]["id"] for m in left}
                    calls = [
                        (c.method, c.params.get("text"), c.error)
                        for c in emu.calls
                        if c.params.get("chat_id") in chats
                    ]
                    logs = "\n".join(r.log_tail(60) for r in replicas)
                    unanswered = [m["text"] for m in left]
                    raise AssertionError(f"unanswered: {unanswered}\n{calls}\n{logs}") from None

                alice = people[0]
                chat = emu.private_chat(alice)
                saved = emu.send_message(alice, chat, "/set generate temperature 0.35")
                await emu.wait_until(lambda: bool(replies_to(emu, saved)), 60)
                shown = emu.send_message(alice, chat, "/settings generate")
                await emu.wait_until(lambda: bool(replies_to(emu, shown)), 60)
                for replica in (replicas[0], replicas[2]):
                    assert await replica.stop() == 0

    assert emu.flood.served == 0, "a 429: the replicas together overran one of Telegram's limits"
    counts = [len(replies_to(emu, m)) for m in sent]
    assert all(1 <= count <= 2 for count in counts), counts
    for person in people:
        mine = [m for m in sent if m["chat"]["id"] == emu.private_chat(person).id]
        answers = [replies_to(emu, m)[0]["message_id"] for m in mine]
        assert answers == sorted(answers), f"{person.first_name}'s answers came out of order"
    in_group = answered_in_order(emu, group.id, asked)
    assert list(dict.fromkeys(in_group)) == list(asked.values()), "the group's answers in order"
    [settings_reply] = replies_to(emu, shown)
    assert "temperature = 0.35" in settings_reply["text"], settings_reply["text"]
