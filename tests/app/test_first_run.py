"""A newcomer's first `hfbot run`, as a real process: what fails is one line, never a traceback.

Telegram that is down, silent or answering 5xx is tried again with backoff and
served once it answers; a rejected token and a database that cannot be opened
end the run in one line; a missing token is answered before the ML stack loads.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.faults import Fault

ROOT = Path(__file__).resolve().parent.parent.parent
RETRY_LINE = re.compile(
    r"WARNING bot\.app\.serve: cannot reach Telegram at \S+ \(.+\); trying again in \d+ s$"
)
BAD_GATEWAY_LINE = re.compile(r"cannot reach Telegram at \S+ \(.*502.*\); trying again")


def environment(**settings: str) -> dict[str, str]:
    """The process environment without the developer's own bot settings, plus `settings`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HFBOT_", "TELEGRAM_", "DATABASE_URL"))
    }
    return {**env, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **settings}


class BotRun:
    """`hfbot run` in a child process, its stderr read line by line as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._grew = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            self._grew.set()
        self._grew.set()

    async def until(
        self,
        pattern: re.Pattern[str],
        count: int = 1,
        timeout: float = 90,  # noqa: ASYNC109 - the test's own bound
    ) -> list[str]:
        """The first `count` stderr lines matching `pattern`, once written."""
        async with asyncio.timeout(timeout):
            while len(found := [line for line in self.lines if pattern.search(line)]) < count:
                if self._reader.done():
                    raise AssertionError("hfbot exited:\n" + "\n".join(self.lines[-30:]))
                self._grew.clear()
                await self._grew.wait()
        return found[:count]

    async def stop(self) -> int:
        """SIGTERM, then its exit code once every line it wrote was read."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.exit_code()

    async def exit_code(self) -> int:
        code = await asyncio.wait_for(self.process.wait(), 60)
        await self._reader
        return code

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)


@asynccontextmanager
async def hfbot_run(tmp_path: Path, **settings: str) -> AsyncIterator[BotRun]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.cli",
        "run",
        cwd=tmp_path,
        env=environment(
            **{"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", **settings}
        ),
        stderr=asyncio.subprocess.PIPE,
    )
    run = BotRun(process)
    try:
        yield run
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_telegram_down_then_refusing_is_one_line_per_attempt_until_it_answers(
    tmp_path: Path,
) -> None:
    port = free_port()
    emu = BotApiEmulator(port=port)
    async with hfbot_run(
        tmp_path,
        TELEGRAM_BOT_TOKEN=emu.token,
        TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{port}",
    ) as run:
        [refused] = await run.until(RETRY_LINE)
        assert f"127.0.0.1:{port}" in refused and "ConnectError" in refused
        emu.faults.add(Fault("getMe", "status", count=4, status=502))
        async with emu:
            await run.until(BAD_GATEWAY_LINE)
            await emu.wait_for("getUpdates", since=0, timeout=60)
            alice = emu.create_user("Alice")
            emu.send_message(alice, emu.private_chat(alice), "/start")
            [answer] = await emu.wait_for("sendMessage", timeout=60)
            code = await run.stop()

    assert answer.error is None
    assert code == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert not emu.faults.pending, "the 502s were met before the bot got in"


async def test_telegram_gone_while_polling_and_at_shutdown_is_one_line_each_and_a_clean_stop(
    tmp_path: Path,
) -> None:
    emu = BotApiEmulator()
    await emu.start()
    try:
        async with hfbot_run(
            tmp_path, TELEGRAM_BOT_TOKEN=emu.token, TELEGRAM_API_BASE_URL=emu.url
        ) as run:
            await emu.wait_for("getUpdates", since=0, timeout=60)
            await emu.stop()
            [lost] = await run.until(
                re.compile(r"WARNING bot\.app\.polling: polling Telegram failed")
            )
            code = await run.stop()
    finally:
        await emu.stop()

    assert code == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert "trying again" in lost
    [last_poll] = [line for line in run.lines if "one more time" in line]
    assert last_poll.split(" ", 3)[2] == "WARNING" and "ConnectError" in last_poll


async def test_telegram_that_accepts_and_never_answers_is_one_line_and_a_clean_stop(
    tmp_path: Path,
) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        async with hfbot_run(
            tmp_path,
            TELEGRAM_BOT_TOKEN="123:abc",
            TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{port}",
        ) as run:
            [line] = await run.until(RETRY_LINE)
            code = await run.stop()

    assert "Timed out" in line
    assert code == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr


async def test_a_token_telegram_rejects_is_one_line_and_exit_2(tmp_path: Path) -> None:
    async with BotApiEmulator() as emu:
        async with hfbot_run(
            tmp_path, TELEGRAM_BOT_TOKEN="123:not-this-bot", TELEGRAM_API_BASE_URL=emu.url
        ) as run:
            code = await run.exit_code()

    assert code == 2
    assert run.lines[-1] == (
        "hfbot: Telegram rejected TELEGRAM_BOT_TOKEN: check it, or ask @BotFather for a "
        "new one if it was revoked."
    )
    assert "Traceback" not in run.stderr and "not-this-bot" not in run.stderr


async def test_an_unreachable_database_server_ends_in_one_line_without_a_stray_traceback(
    tmp_path: Path,
) -> None:
    async with BotApiEmulator() as emu:
        async with hfbot_run(
            tmp_path,
            TELEGRAM_BOT_TOKEN=emu.token,
            TELEGRAM_API_BASE_URL=emu.url,
            DATABASE_URL=f"postgresql+asyncpg://bot:secret@127.0.0.1:{free_port()}/hfbot",
            HFBOT_DATABASE_START_WAIT_S="1",
        ) as run:
            code = await run.exit_code()

    assert code == 3
    assert re.fullmatch(
        r"hfbot: cannot reach the database at postgresql\+asyncpg://bot:\*\*\*@127\.0\.0\.1:\d+/hfbot"
        r" \(connection refused\)",
        run.lines[-1],
    ), run.stderr[-2000:]
    assert "Traceback" not in run.stderr and "secret" not in run.stderr


def hfbot(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        env=environment(**settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_sqlite_file_in_a_missing_folder_is_one_line_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "bot.db"
    url = f"sqlite+aiosqlite:///{missing}"
    for args in (("run",), ("db", "upgrade")):
        result = hfbot(*args, cwd=tmp_path, TELEGRAM_BOT_TOKEN="123:abc", DATABASE_URL=url)
        assert result.returncode == 3
        assert result.stderr.splitlines() == [
            f"hfbot: cannot open the database at {missing} "
            f"(the folder {missing.parent} does not exist)"
        ]


def test_a_file_that_is_not_a_database_is_one_line_saying_so(tmp_path: Path) -> None:
    notes = tmp_path / "notes.db"
    notes.write_text("these are my notes, not a database\n" * 100)
    result = hfbot(
        "run",
        cwd=tmp_path,
        TELEGRAM_BOT_TOKEN="123:abc",
        DATABASE_URL="sqlite+aiosqlite:///./notes.db",
    )
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"hfbot: cannot open the database at {notes} (file is not a database)"
    ]
    assert notes.read_text().startswith("these are my notes"), "the file is left as it was"


def test_hfbot_run_without_a_token_answers_in_under_two_seconds_without_the_ml_stack(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    result = hfbot("run", cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert result.returncode == 2 and "TELEGRAM_BOT_TOKEN is not set" in result.stderr
    assert elapsed < 2.0, f"took {elapsed:.1f} s"

    probe = (
        "import sys\nfrom bot.cli import main\ncode = main(['run'])\n"
        "print(code, sorted(m for m in ('torch', 'transformers', 'telegram', 'sqlalchemy') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.stdout.strip() == "2 []"
