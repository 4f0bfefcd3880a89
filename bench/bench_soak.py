"""Soak: thousands of requests from hundreds of people through the emulator, nothing dropped.

`hfbot run` runs as its own process in webhook mode (so its resident memory is
its own, and every update goes through the inbox) with a tiny model for every
task, against the Bot API emulator in this process, with the pool's default
memory budget (before it, a count limit of 3 models made eight models take
turns being evicted and loaded again: p50 from 0.2 s to 46 s over 900
requests at 15 a second; bench/bench_cold_start.py compares the default
against every model preloaded). Simulated people send a
mix of commands at a steady rate (open loop: arrivals do not wait for
answers), in their private chats and in groups: sentiment, NER, fill-mask,
zero-shot, summaries, translations, streamed generation, /set writes,
/settings, /start, /help, /lang. Measured:

- every request answered (the bot's first message replying to it, or a shared
  group message quoting it), and errors:
  answers saying something went wrong, busy, slow down, or database trouble,
  Bot API calls that failed, and ERROR lines in the bot's log;
- latency from the message to the bot's first reply to it, p50 and p95
  (streamed generation: its first draft; the Bot API budget of 30 messages a
  second, shared with typing indicators and edits, is part of what is measured);
- WARNING lines in the bot's log (a usage row not logged, a store unreachable);
- the bot's RSS every second: at start, after warm-up (the first tenth of the
  requests, by which every model is loaded) and at the end.

And the inbox's own cost: one update recorded and marked done, on SQLite and
PostgreSQL, timed alone.

Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_soak` (10,000 requests
at 20 a second: about 9 minutes); `--write` also replaces the "Soak" section of
bench/RESULTS.md. The timed tests run a few hundred requests of the same code.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import socket
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil

from bench.results import cpu_times, stolen_share, write_section
from bot.delivery.shared_answers import QUOTE_CHARS
from bot.offline.bot_process import BotProcess, bot_environment
from bot.offline.demo_models import build_demo_models
from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.world import ApiCall, FakeChat, FakeUser
from bot.tasks import param_rules_from_caps
from models import migrate
from models.database import create_engine
from models.store import Store

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SECTION = "## Soak"
BOT_NAME = "hfbot_test_bot"
WORDS = "the book was lovely and the weather in Paris was awful but the train ran late".split()
# (weight, command): `{t}` becomes a few words, `{n}` a number.
MIX: list[tuple[int, str]] = [
    (28, "/sentiment {t}"),
    (8, "/ner {t} in Paris"),
    (8, "/fill The {t} is <mask>."),
    (6, "/classify {t} | happy, sad, angry"),
    (5, "/summarize {t} {t} {t}"),
    (5, "/translate {t}"),
    (6, "/generate {t}"),
    (8, "/set temperature 0.{n}"),
    (4, "/set max_new_tokens 1{n}"),
    (8, "/settings"),
    (5, "/help"),
    (5, "/start"),
    (4, "/lang en"),
]
ERROR_MARKS = (
    "Something went wrong",
    "I'm busy",
    "Slow down",
    "can't reach my",
    "failed to load",
    "took too long",
    "restarting",
)


@dataclass
class Report:
    requests: int
    users: int
    groups: int
    rate: float
    answered: int = 0
    error_answers: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    failed_calls: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    log_errors: int = 0
    log_warnings: int = 0
    latencies_s: list[float] = field(default_factory=list)
    rss_mib: list[tuple[float, int, float]] = field(default_factory=list)  # (s, sent, MiB)
    rss_start_mib: float = 0.0
    seconds: float = 0.0
    texts: list[str] = field(default_factory=list)
    usage_rows: int = 0
    model_requests: int = 0

    @property
    def errors(self) -> int:
        return self.error_answers + self.failed_calls + self.log_errors

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def rss_after(self, sent: int) -> float:
        return next((mib for _, done, mib in self.rss_mib if done >= sent), self.rss_mib[-1][2])

    @property
    def rss_warm_mib(self) -> float:
        return self.rss_after(self.requests // 10)

    @property
    def rss_end_mib(self) -> float:
        return self.rss_mib[-1][2]

    @property
    def rss_growth_mib(self) -> float:
        """From after warm-up to the end: what a leak would show."""
        return self.rss_end_mib - self.rss_warm_mib


class Answers:
    """Reads the emulator's calls once each: the first answer to every request, and failures.

    An answer is the bot's first message replying to the request, or the first
    edit of one, leaving out "⏳ in line" status lines (they are edited into
    the answer later). In groups, answers ready at the same moment share one
    message that quotes each asker and question; those count for every request
    they quote. A streamed answer in a private chat shows first as a draft (no
    message yet, no reply link): its first draft answers the chat's earliest
    streamed request still unanswered.
    """

    def __init__(self, emu: BotApiEmulator) -> None:
        self.emu = emu
        self.first: dict[tuple[int, int], ApiCall] = {}
        self.failed = 0
        self.failures: Counter[str] = Counter()
        self.error_answers = 0
        self._quoted: dict[int, list[tuple[str, tuple[int, int]]]] = {}
        self._erring: set[tuple[int, int]] = set()
        self.error_kinds: Counter[str] = Counter()
        self._seen = 0
        # Streamed requests in private chats, in the order sent: a stream's first draft
        # (a draft id not seen before) answers the chat's earliest one still unanswered.
        self._streamed: dict[int, list[tuple[int, int]]] = {}
        self._drafts: set[tuple[int, int]] = set()

    def expect(self, key: tuple[int, int], asker: str, question: str) -> None:
        """A request in a group: how a shared answer would quote it."""
        if len(question) > QUOTE_CHARS:
            question = question[: QUOTE_CHARS - 1] + "…"
        self._quoted.setdefault(key[0], []).append((f"{asker}: {question}", key))

    def expect_draft(self, key: tuple[int, int]) -> None:
        """A request in a private chat that the bot may answer with a draft first."""
        self._streamed.setdefault(key[0], []).append(key)

    def catch_up(self) -> None:
        calls = self.emu.calls
        for call in calls[self._seen :]:
            if call.error is not None:
                self.failed += 1
                self.failures[f"{call.method}: {call.error}"] += 1
                continue
            if call.method == "sendMessageDraft":
                self._first_draft(call)
                continue
            result = call.result
            if call.method not in ("sendMessage", "editMessageText") or not isinstance(
                result, dict
            ):
                continue
            text = result.get("text", "")
            if text.startswith("⏳"):
                continue
            chat_id = result["chat"]["id"]
            marks = [mark for mark in ERROR_MARKS if mark in text]
            if marks and (chat_id, result["message_id"]) not in self._erring:
                self._erring.add((chat_id, result["message_id"]))
                self.error_kinds[marks[0]] += 1
            replied = result.get("reply_to_message", {}).get("message_id")
            if replied is not None:
                self.first.setdefault((chat_id, replied), call)
            for quote, key in self._quoted.get(chat_id, []):
                if key not in self.first and quote in text:
                    self.first[key] = call
        self._seen = len(calls)
        self.error_answers = len(self._erring)

    def _first_draft(self, call: ApiCall) -> None:
        chat_id, draft_id = int(call.params["chat_id"]), int(call.params["draft_id"])
        if (chat_id, draft_id) in self._drafts:
            return
        self._drafts.add((chat_id, draft_id))
        waiting = (key for key in self._streamed.get(chat_id, []) if key not in self.first)
        if (key := next(waiting, None)) is not None:
            self.first[key] = call


def command(rng: random.Random, in_group: bool) -> str:
    weights, templates = zip(*MIX, strict=True)
    template = rng.choices(templates, weights)[0]
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
    text = template.replace("{t}", words).replace("{n}", str(rng.randint(1, 9)))
    if in_group:
        name, _, rest = text.partition(" ")
        text = f"{name}@{BOT_NAME} {rest}".rstrip()
    return text


async def soak(
    requests: int,
    users: int,
    groups: int,
    rate: float,
    workdir: Path,
    models_dir: Path,
    *,
    database_url: str | None = None,
    seed: int = 18,
    drain_s: float = 120.0,
    warm_up: bool = False,
    **extra_env: str,
) -> Report:
    """Run the soak and report; the bot is stopped gracefully at the end.

    With `warm_up`, one request of each model command of the mix is answered
    before the clock starts, so every model is loaded (and exported) already.
    """
    report = Report(requests, users, groups, rate)
    rng = random.Random(seed)
    port = _free_port()
    async with BotApiEmulator() as emu:
        env = bot_environment(
            emu,
            database_url or f"sqlite+aiosqlite:///{workdir / 'soak.db'}",
            build_demo_models(models_dir),
            port,
            HFBOT_LOG_LEVEL="WARNING",
            **extra_env,
        )
        bot = BotProcess(emu, env, workdir)
        await bot.start()
        assert bot.process is not None
        process = psutil.Process(bot.process.pid)
        report.rss_start_mib = process.memory_info().rss / 2**20
        people = [emu.create_user(f"user{i}") for i in range(users)]
        chats = [emu.create_chat("supergroup", f"group{i}") for i in range(groups)]
        member_of: dict[int, FakeChat] = {p.id: chats[i % groups] for i, p in enumerate(people)}
        answers = Answers(emu)
        warmed = await _warm_up(emu, answers, port) if warm_up else 0
        sent: dict[tuple[int, int], float] = {}
        started = time.monotonic()
        sampling = asyncio.create_task(_sample_rss(process, report, sent, started))
        try:
            for index in range(requests):
                due = started + index / rate
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                person: FakeUser = rng.choice(people)
                in_group = groups > 0 and rng.random() < 0.3
                chat = member_of[person.id] if in_group else emu.private_chat(person)
                text = command(rng, in_group)
                report.texts.append(text)
                message = emu.send_message(person, chat, text)
                key = (chat.id, message["message_id"])
                sent[key] = time.monotonic()
                if in_group:
                    answers.expect(key, person.first_name, text)
                elif text.startswith("/generate"):
                    answers.expect_draft(key)
                if index % 50 == 0:
                    answers.catch_up()

            def all_answered() -> bool:
                answers.catch_up()
                return all(key in answers.first for key in sent)

            try:
                await emu.wait_until(all_answered, timeout=drain_s)
            except TimeoutError:
                pass
            report.seconds = time.monotonic() - started
            await _record_rss(process, report, len(sent), started)
        finally:
            sampling.cancel()
            await bot.stop()
        answers.catch_up()
    report.answered = sum(key in answers.first for key in sent)
    report.latencies_s = [
        answers.first[key].at - moment for key, moment in sent.items() if key in answers.first
    ]
    report.error_answers = answers.error_answers
    report.error_kinds = dict(answers.error_kinds)
    report.failed_calls = answers.failed
    report.failures = dict(answers.failures)
    lines = [line for log in bot.logs for line in log.read_text(errors="replace").splitlines()]
    report.log_errors = sum(" ERROR " in line or "Traceback" in line for line in lines)
    report.log_warnings = sum(" WARNING " in line for line in lines)
    if database_url is None:
        report.usage_rows = _usage_rows(workdir / "soak.db") - warmed
        report.model_requests = sum(
            text.split("@")[0].split()[0] in MODEL_COMMANDS for text in report.texts
        )
    return report


MODEL_COMMANDS = {
    template.split()[0]
    for _, template in MIX
    if not template.startswith(("/set", "/settings", "/help", "/start", "/lang"))
}


async def _warm_up(emu: BotApiEmulator, answers: Answers, port: int) -> int:
    """One request per model command of the mix, from a person of its own, all answered,
    and (with ONNX on) every encoder model's export settled; returns how many were sent."""
    person = emu.create_user("warm-up")
    chat = emu.private_chat(person)
    keys = []
    for template in sorted(MODEL_COMMANDS):
        text = next(t for _, t in MIX if t.startswith(template + " "))
        message = emu.send_message(person, chat, text.replace("{t}", "the book was lovely"))
        keys.append((chat.id, message["message_id"]))

    def answered() -> bool:
        answers.catch_up()
        return all(key in answers.first for key in keys)

    await emu.wait_until(answered, timeout=300)
    await _exports_settled(port, sum(command in ONNX_COMMANDS for command in MODEL_COMMANDS))
    return len(keys)


# The mix's commands whose models the pool moves to ONNX Runtime (HFBOT_ENGINE_ONNX=auto).
ONNX_COMMANDS = {"/sentiment", "/ner", "/fill", "/classify"}
ONNX_COUNTERS = ("hfbot_pool_onnx_exports_total", "hfbot_pool_onnx_fallbacks_total")


async def _exports_settled(port: int, expected: int, timeout_s: float = 300.0) -> None:
    """Poll the bot's /metrics until `expected` exports have been made or given up (or the
    bot keeps every model on torch)."""
    import aiohttp

    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
            counts = {
                line.split()[0]: float(line.split()[1])
                for line in text.splitlines()
                if line.split(" ")[0] in ONNX_COUNTERS
            }
            settled = sum(counts.values())
            if "hfbot_pool_onnx_exports_total" not in counts or settled >= expected:
                return
            await asyncio.sleep(0.5)
    raise TimeoutError(f"ONNX exports not settled after {timeout_s:.0f} s")


def _usage_rows(database: Path) -> int:
    """Rows of the usage log (one per model request, failed ones included)."""
    import sqlite3

    with sqlite3.connect(database) as connection:
        (count,) = connection.execute("SELECT count(*) FROM usage_log").fetchone()
    return int(count)


async def _sample_rss(
    process: psutil.Process, report: Report, sent: dict[tuple[int, int], float], started: float
) -> None:
    while True:
        await _record_rss(process, report, len(sent), started)
        await asyncio.sleep(1.0)


async def _record_rss(process: psutil.Process, report: Report, sent: int, started: float) -> None:
    rss = process.memory_info().rss / 2**20
    report.rss_mib.append((time.monotonic() - started, sent, rss))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def inbox_overhead(database_url: str, updates: int = 500) -> float:
    """Milliseconds one update costs the inbox: recorded, then marked done, one at a time."""
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    store = Store(engine, rules=param_rules_from_caps(256, 3))
    payload = {"update_id": 0, "message": {"message_id": 1, "text": "/sentiment " + "x" * 80}}
    try:
        started = time.perf_counter()
        for update_id in range(updates):
            await store.inbox.accept(1, update_id, 42, payload)
            await store.inbox.done(1, [update_id])
        return (time.perf_counter() - started) / updates * 1000
    finally:
        await store.close()


async def inbox_overhead_on_postgres(server_url: str) -> float:
    """The same on a scratch database of the server at `server_url`, dropped afterwards."""
    name = f"hfbot_bench_{os.getpid()}"
    dsn = server_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            return await inbox_overhead(f"{server_url.rsplit('/', 1)[0]}/{name}")
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def markdown(
    report: Report, inbox_ms: dict[str, float], load: tuple[float, float], stolen: float
) -> str:
    series = report.rss_mib
    step = max(1, report.requests // 10)
    marks = []
    for target in range(0, report.requests + 1, step):
        found = next(((s, sent, mib) for s, sent, mib in series if sent >= target), series[-1])
        marks.append(f"{found[1]:,} requests ({found[0]:.0f} s): {found[2]:.0f} MiB")
    inbox = ", ".join(f"{name} {ms:.2f} ms" for name, ms in inbox_ms.items())
    return f"""{SECTION}

`python -m bench.bench_soak` on {platform.machine()}, {os.cpu_count()} cores, Python
{platform.python_version()}: `hfbot run` (webhook mode, SQLite, a tiny model per task) as
its own process, against the emulator; {report.users} simulated people in their private
chats and {report.groups} groups, {report.rate:.0f} requests a second (open loop), mixed
commands (sentiment, NER, fill-mask, zero-shot, summaries, translations, streamed
generation, /set, /settings, /start, /help, /lang). One run; the bot's defaults but
ONNX off (torch, with every usable core but one for its threads), no per-minute rate
limit and 10 requests in flight per person (`bot_environment`).
1-minute load average {load[0]:.1f} before the run, {load[1]:.1f} after; CPU time taken by
the host (steal, /proc/stat) over the run: {stolen:.1%}.

| figure | value |
|---|---|
| requests sent | {report.requests:,} |
| answered | {report.answered:,} ({report.answered / report.requests:.2%}) |
| errors (error answers / failed Bot API calls / ERROR log lines) | {report.errors} ({report.error_answers} / {report.failed_calls} / {report.log_errors}) |
| WARNING log lines (e.g. usage not logged: database busy) | {report.log_warnings} |
| latency to the first reply, p50 | {report.quantile(0.5) * 1000:.0f} ms |
| latency to the first reply, p95 | {report.quantile(0.95) * 1000:.0f} ms |
| latency, max | {max(report.latencies_s, default=float("nan")) * 1000:.0f} ms |
| bot RSS at start (no model loaded) | {report.rss_start_mib:.0f} MiB |
| bot RSS after warm-up ({report.requests // 10:,} requests) | {report.rss_warm_mib:.0f} MiB |
| bot RSS at the end | {report.rss_end_mib:.0f} MiB ({report.rss_growth_mib:+.0f} MiB after warm-up) |
| wall time | {report.seconds:.0f} s |
| inbox cost per update (recorded + marked done, alone) | {inbox} |

Failed Bot API calls, by method and Telegram's answer: {"; ".join(f"{k} ×{n}" for k, n in report.failures.items()) or "none"}.
Error answers, by what they said: {"; ".join(f"“{k}” ×{n}" for k, n in report.error_kinds.items()) or "none"}.

RSS over the run: {"; ".join(marks)}.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0, help="requests a second")
    parser.add_argument("--models-dir", type=Path, default=Path.home() / ".cache/hfbot/demo-models")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "HFBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
        help="where the inbox cost is measured on PostgreSQL (empty: skip)",
    )
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    load_before, cpu_before = os.getloadavg()[0], cpu_times()
    with tempfile.TemporaryDirectory() as workdir:
        inbox_ms = {"SQLite": asyncio.run(inbox_overhead(f"sqlite+aiosqlite:///{workdir}/i.db"))}
        if args.postgres:
            inbox_ms["PostgreSQL"] = asyncio.run(inbox_overhead_on_postgres(args.postgres))
        report = asyncio.run(
            soak(args.requests, args.users, args.groups, args.rate, Path(workdir), args.models_dir)
        )
    load = (load_before, os.getloadavg()[0])
    text = markdown(report, inbox_ms, load, stolen_share(cpu_before, cpu_times()))
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
