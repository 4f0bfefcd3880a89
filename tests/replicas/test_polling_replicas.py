"""Three `hfbot run` processes of one bot polling Telegram (no webhook), on one PostgreSQL and
one Redis: one polls at a time, another takes over when it is killed, and Redis going away
stops nobody answering.

Telegram is the project's emulator, which answers two getUpdates at once as Telegram does
(409 Conflict, "terminated by other getUpdates request"): none may ever be seen. The
replicas reach Redis through a `TcpProxy` the test cuts and mends.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bot.offline.bot_process import BotProcess, bot_environment
from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.world import JsonDict
from tests.app.test_webhook import free_port
from tests.support.crash import replies_to
from tests.support.harness import tiny_default_models
from tests.support.replica_processes import started
from tests.support.tcp_proxy import TcpProxy

REPLICAS = 3
INBOX_LEASE_S = 3.0
POLLER_LEASE_S = 5.0  # bot.replicas.poll_leader.LEASE_S


async def roles(replicas: list[BotProcess]) -> list[object]:
    return [(await replica.health()).get("poller") for replica in replicas]


def conflicts(emu: BotApiEmulator) -> list[str]:
    return [c.error for c in emu.calls if c.method == "getUpdates" and "Conflict" in (c.error or "")]


async def test_polling_replicas_poll_one_at_a_time_survive_a_killed_poller_and_redis_going_away(
    tmp_path: Path, tiny_models_dir: Path, postgres_database: str
) -> None:
    token = f"{random.randrange(7 * 10**9, 8 * 10**9)}:polling-replica-token"
    proxy = await TcpProxy("127.0.0.1", 6379).start()
    try:
        async with BotApiEmulator(token) as emu:
            replicas = []
            for n in range(REPLICAS):
                env = bot_environment(
                    emu,
                    postgres_database,
                    tiny_default_models(tiny_models_dir),
                    None,
                    HFBOT_REDIS_URL=proxy.url,
                    HFBOT_INBOX_LEASE_S=str(INBOX_LEASE_S),
                    HFBOT_POOL_MAX_WAIT_MS="200",
                    HFBOT_METRICS_PORT=str(free_port()),
                )
                workdir = tmp_path / f"replica{n}"
                workdir.mkdir()
                replicas.append(BotProcess(emu, env, workdir))
            async with started(replicas):
                await emu.wait_until(lambda: emu.long_polls_waiting == 1, 30)
                found = await roles(replicas)
                assert sorted(map(str, found)) == ["leader", "standby", "standby"], found
                poller = replicas[found.index("leader")]

                def ask(who: str, many: int, text: str) -> list[JsonDict]:
                    people = [emu.create_user(f"{who} {n}") for n in range(many)]
                    return [emu.send_message(p, emu.private_chat(p), text) for p in people]

                def answered(messages: list[JsonDict]) -> int:
                    return sum(bool(replies_to(emu, m)) for m in messages)

                def all_answered(messages: list[JsonDict]) -> Callable[[], bool]:
                    return lambda: answered(messages) == len(messages)

                burst = ask("Early", 30, "/sentiment a burst, fine")
                await emu.wait_until(lambda: answered(burst) >= 8, 60)
                poller.kill()
                await poller.wait()
                killed_at = time.monotonic()
                late = ask("Late", 3, "/sentiment right after the kill")
                await emu.wait_until(all_answered(late), 30)
                takeover_s = time.monotonic() - killed_at
                await emu.wait_until(all_answered(burst), 60)

                survivors = [replica for replica in replicas if replica is not poller]
                assert sorted(map(str, await roles(survivors))) == ["leader", "standby"]

                # Redis goes away for longer than the poller's lease: the poller goes on
                # polling, the standby does not start, and everyone is answered.
                await proxy.cut()
                cut_at = time.monotonic()
                during = ask("During", 5, "/sentiment while Redis is down")
                await emu.wait_until(all_answered(during), 30)
                while time.monotonic() - cut_at < POLLER_LEASE_S + 1:  # its key lapses
                    during += ask("Down", 1, "/sentiment still down")
                    await emu.wait_until(all_answered(during), 30)
                await proxy.mend()
                after = ask("After", 3, "/sentiment Redis is back")
                await emu.wait_until(all_answered(after), 30)
                assert sorted(map(str, await roles(survivors))) == ["leader", "standby"]
                for replica in survivors:
                    assert await replica.stop() == 0
    finally:
        await proxy.cut()

    assert conflicts(emu) == [], "two replicas polled at once"
    counts = [len(replies_to(emu, m)) for m in burst + late + during + after]
    assert all(1 <= count <= 2 for count in counts), counts
    assert takeover_s < POLLER_LEASE_S + 5, f"a message sent after the kill waited {takeover_s:.1f} s"
    fetched = Counter(
        update["update_id"]
        for c in emu.calls
        if c.method == "getUpdates" and isinstance(c.result, list)
        for update in c.result
    )
    again = sum(1 for count in fetched.values() if count > 1)
    print(f"\nanswered {takeover_s:.1f} s after the poller's SIGKILL; {again} updates fetched twice")
