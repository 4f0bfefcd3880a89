"""`hfbot run` as a process of its own against the emulator, for crash tests and the soak.

The emulator lives in the caller's process, so it outlives the bot: it keeps the
updates the bot never acknowledged, retries the webhook delivery a kill cut
off, and records every answer across the bot's lives. The bot's resident
memory is its own, unmixed with the emulator's records.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bot.offline.emulator import BotApiEmulator

HFBOT = Path(sys.executable).with_name("hfbot")


@dataclass
class BotProcess:
    """One `hfbot run` (webhook or polling); `lives` counts how often it was started."""

    emu: BotApiEmulator
    env: dict[str, str]
    workdir: Path
    process: asyncio.subprocess.Process | None = None
    lives: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def standing_by(self) -> bool:
        """A replica in polling mode, which may never poll (another one does)."""
        return "HFBOT_REDIS_URL" in self.env and "HFBOT_WEBHOOK_URL" not in self.env

    async def start(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109 - the test's own bound
        """Start it; return once it serves (its webhook registered, its first long poll, or, a
        replica in polling mode, its /healthz naming its part: poller or standby).

        A long poll is recorded as a call only when it returns, so a poll held
        open counts as serving too.
        """
        ready = "setWebhook" if self.env.get("HFBOT_WEBHOOK_URL") else "getUpdates"
        before = sum(1 for call in self.emu.calls if call.method == ready)
        self.lives += 1
        log = self.workdir / f"bot-{self.lives}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                str(HFBOT), "run", env=self.env, cwd=self.workdir, stdout=out, stderr=out
            )
        self.process = process
        try:
            if self.standing_by:
                await self._health_names_poller(timeout)
            else:
                await self.emu.wait_until(
                    lambda: (
                        sum(1 for c in self.emu.calls if c.method == ready) > before
                        or (ready == "getUpdates" and self.emu.long_polls_waiting > 0)
                        or process.returncode is not None
                    ),
                    timeout=timeout,
                )
        except TimeoutError:
            raise RuntimeError(f"the bot did not start:\n{self.log_tail()}") from None
        if process.returncode is not None:
            raise RuntimeError(f"the bot exited ({process.returncode}):\n{self.log_tail()}")

    async def health(self) -> dict[str, object]:
        """What its /healthz says (on HFBOT_METRICS_PORT); empty while it does not answer."""
        url = f"http://127.0.0.1:{self.env['HFBOT_METRICS_PORT']}/healthz"
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                found = await response.json()
        except (aiohttp.ClientError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}

    async def _health_names_poller(self, timeout: float) -> None:  # noqa: ASYNC109
        """Until /healthz names its part; another process's state, so it is asked again."""
        async with asyncio.timeout(timeout):
            while "poller" not in await self.health():
                if self.process is None or self.process.returncode is not None:
                    return
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM: it finishes what it holds (the graceful stop) and exits."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 60)

    def log_tail(self, lines: int = 40) -> str:
        if not self.logs or not self.logs[-1].exists():
            return ""
        return "\n".join(self.logs[-1].read_text(errors="replace").splitlines()[-lines:])


def bot_environment(
    emu: BotApiEmulator,
    database_url: str,
    default_models: dict[str, str],
    port: int | None,
    **extra: str,
) -> dict[str, str]:
    """The environment of `hfbot run` against `emu`: nothing from the developer's own settings.

    With a `port` the bot serves a webhook there; without one it polls.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HFBOT_", "TELEGRAM_", "DATABASE_URL"))
    }
    env.update(
        {
            "TELEGRAM_BOT_TOKEN": emu.token,
            "TELEGRAM_API_BASE_URL": emu.url,
            "DATABASE_URL": database_url,
            "HFBOT_DEFAULT_MODELS": json.dumps(default_models),
            "HFBOT_ENGINE_ONNX": "off",
            "HFBOT_RATE_LIMIT_PER_MINUTE": "0",
            "HFBOT_MAX_IN_FLIGHT_PER_USER": "10",
            "HFBOT_SHUTDOWN_GRACE_S": "30",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            **extra,
        }
    )
    if port is not None:
        env.update(
            {
                "HFBOT_WEBHOOK_URL": f"http://127.0.0.1:{port}",
                "HFBOT_WEBHOOK_LISTEN": "127.0.0.1",
                "HFBOT_WEBHOOK_PORT": str(port),
                "HFBOT_WEBHOOK_SECRET": "crash-test-secret",
            }
        )
    return env
