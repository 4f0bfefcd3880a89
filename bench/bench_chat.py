"""Conversations: continuous batching against one-at-a-time, and the cost of a remote engine.

1. Many conversations at once on the bot's own CPU. A SmolLM2-360M-size Llama
   (32 layers, 960 hidden, 15 heads, 49152-token vocabulary) with random
   weights, built by `bot.offline.demo_models` at its BASE scale: the cost of a
   forward pass does not depend on whether the weights are trained. Users arrive
   together, each holding a 3-turn conversation with their own temperature; a
   turn starts when the user's previous answer is in, and carries the
   conversation so far (the model's chat template, as the bot sends it).
   Compared, interleaved over a few rounds (medians reported):
   - the pool: `PipelinePool.submit("chat", …)` as the bot calls it, every user's
     own parameters in one continuously batched run;
   - naive: each turn alone, one after another, in one worker thread
     (`generate()` on the templated conversation), as a bot without batching would.
2. The remote hop. The same tiny chat model in the bot's process and behind a
   real `transformers serve` on 127.0.0.1, one conversation of several turns on
   each, interleaved: time to first token and time per turn, p50.

Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_chat` (about 10 minutes
on 2 cores); `--write` also replaces the "Conversations" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench.results import write_section
from bot.config import Settings
from bot.engine.chat import ChatMessage, ChatPrompt
from bot.engine.pool import PipelinePool
from bot.offline.demo_models import BASE, WORDS, tiny_chat
from bot.offline.local_engine import transformers_serve
from bot.tasks import ChatReply

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SECTION = "## Conversations"
USERS = 16
TURNS = 3
NEW_TOKENS = 16
HOP_TURNS = 6
HOP_TOKENS = 32
SYSTEM = "You are a helpful assistant in a Telegram chat."


def message(user: int, turn: int) -> str:
    words = [WORDS[(user * 7 + turn * 3 + i) % len(WORDS)] for i in range(12)]
    return " ".join(words).capitalize() + "?"


@dataclass
class Run:
    turn_seconds: list[float] = field(default_factory=list)
    first_token: list[float] = field(default_factory=list)
    tokens: int = 0
    makespan: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.makespan

    @property
    def p50(self) -> float:
        return statistics.median(self.turn_seconds)


Turn = Callable[[ChatPrompt, dict[str, Any], Callable[[str], None] | None], Awaitable[str]]


async def conversations(turn: Turn, users: int, temperatures: list[float]) -> Run:
    """Every user holds a TURNS-turn conversation; each turn waits for the previous answer."""
    run = Run()
    started = time.perf_counter()

    async def user(index: int) -> None:
        history: tuple[ChatMessage, ...] = ()
        for number in range(TURNS):
            text = message(index, number)
            params = {
                "max_new_tokens": NEW_TOKENS,
                "temperature": temperatures[index],
                "top_k": 50,
                "top_p": 0.95,
                "do_sample": True,
            }
            asked = time.perf_counter()
            reply = await turn(ChatPrompt(SYSTEM, history, text), params, None)
            run.turn_seconds.append(time.perf_counter() - asked)
            run.tokens += NEW_TOKENS
            history = (*history, ChatMessage("user", text), ChatMessage("assistant", reply))

    await asyncio.gather(*(user(i) for i in range(users)))
    run.makespan = time.perf_counter() - started
    return run


def pool_for(loader: Callable[[str, str], Any] | None = None, **settings: Any) -> PipelinePool:
    values: dict[str, Any] = {
        "pool_max_wait_ms": 5,
        "pool_max_batch_size": 16,
        "pool_device": "cpu",
        "pool_dtype": "float32",
        "pool_request_timeout_s": 1200,
        "generation_kv_cache_tokens": 16384,
    }
    return PipelinePool(Settings(_env_file=None, **(values | settings)), loader=loader)


async def many_conversations(models: Path, rounds: int, users: int) -> dict[str, list[Run]]:
    folder = tiny_chat(models, BASE)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    executor = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    pool = pool_for()

    def generate_alone(prompt: ChatPrompt, params: dict[str, Any]) -> str:
        ids = tokenizer.apply_chat_template(
            prompt.messages(), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.inference_mode():
            out = model.generate(**ids, **params, min_new_tokens=NEW_TOKENS)
        return str(tokenizer.decode(out[0][ids["input_ids"].shape[1] :], skip_special_tokens=True))

    async def naive(prompt: ChatPrompt, params: dict[str, Any], _: Any) -> str:
        return await loop.run_in_executor(executor, generate_alone, prompt, params)

    async def pooled(prompt: ChatPrompt, params: dict[str, Any], _: Any) -> str:
        params = params | {"max_new_tokens": NEW_TOKENS}
        answer = await pool.submit("chat", str(folder), prompt, params)
        assert isinstance(answer, ChatReply)
        return answer.text

    temperatures = [round(0.5 + i / max(1, users - 1), 3) for i in range(users)]
    await conversations(pooled, 2, temperatures)
    await conversations(naive, 1, temperatures)
    runs: dict[str, list[Run]] = {"pool": [], "naive": []}
    try:
        for index in range(rounds):
            order = [("pool", pooled), ("naive", naive)][:: 1 if index % 2 == 0 else -1]
            for name, turn in order:
                run = await conversations(turn, users, temperatures)
                runs[name].append(run)
                print(
                    f"round {index + 1} {name:6s} {run.tokens_per_s:6.1f} tok/s p50 {run.p50:.2f} s"
                )
    finally:
        await pool.close()
        executor.shutdown()
    return runs


async def remote_hop(models: Path, rounds: int) -> dict[str, list[Run]]:
    """The same tiny chat model in the bot's process and behind transformers serve."""
    folder = tiny_chat(models)
    runs: dict[str, list[Run]] = {"local": [], "remote": []}
    with transformers_serve(folder) as server:
        local = pool_for()
        remote = pool_for(engines={"serve": {"base_url": server.url}})

        def through(pool: PipelinePool, model: str) -> Turn:
            async def turn(
                prompt: ChatPrompt, params: dict[str, Any], on_text: Callable[[str], None] | None
            ) -> str:
                answer = await pool.submit("chat", model, prompt, params, on_text=on_text)
                assert isinstance(answer, ChatReply)
                return answer.text

            return turn

        engines = {
            "local": through(local, str(folder)),
            "remote": through(remote, f"serve:{folder}"),
        }
        try:
            await one_conversation(engines["local"])
            await one_conversation(engines["remote"])
            for index in range(rounds):
                order = ["local", "remote"][:: 1 if index % 2 == 0 else -1]
                for name in order:
                    run = await one_conversation(engines[name])
                    runs[name].append(run)
                    print(
                        f"round {index + 1} {name:6s} first token "
                        f"{statistics.median(run.first_token) * 1000:6.1f} ms "
                        f"per turn {run.p50 * 1000:6.1f} ms"
                    )
        finally:
            await local.close()
            await remote.close()
    return runs


async def one_conversation(turn: Turn) -> Run:
    run = Run()
    history: tuple[ChatMessage, ...] = ()
    for number in range(HOP_TURNS):
        text = message(0, number)
        asked = time.perf_counter()
        seen: list[float] = []

        def on_text(_: str, asked: float = asked, seen: list[float] = seen) -> None:
            if not seen:
                seen.append(time.perf_counter() - asked)

        params = {"max_new_tokens": HOP_TOKENS, "temperature": 0.7, "do_sample": True}
        reply = await turn(ChatPrompt(SYSTEM, history, text), params, on_text)
        run.turn_seconds.append(time.perf_counter() - asked)
        run.first_token.extend(seen)
        history = (*history, ChatMessage("user", text), ChatMessage("assistant", reply))
    return run


def report(
    chats: dict[str, list[Run]],
    hop: dict[str, list[Run]],
    rounds: int,
    users: int,
    load: tuple[float, float],
) -> str:
    def median(runs: list[Run], value: Callable[[Run], float]) -> float:
        return statistics.median(value(run) for run in runs)

    pool_tps = median(chats["pool"], lambda r: r.tokens_per_s)
    naive_tps = median(chats["naive"], lambda r: r.tokens_per_s)
    pool_p50 = median(chats["pool"], lambda r: r.p50)
    naive_p50 = median(chats["naive"], lambda r: r.p50)
    local_first = median(hop["local"], lambda r: statistics.median(r.first_token))
    remote_first = median(hop["remote"], lambda r: statistics.median(r.first_token))
    local_turn = median(hop["local"], lambda r: r.p50)
    remote_turn = median(hop["remote"], lambda r: r.p50)
    return "\n".join(
        [
            SECTION,
            "",
            f"Machine: {os.cpu_count()} CPU cores, {platform.machine()}, torch "
            f"{torch.__version__} with {torch.get_num_threads()} intra-op threads (the pool's "
            "default: every usable core but one), no GPU; 1-minute load average "
            f"{load[0]:.1f} before the run, {load[1]:.1f} after. Medians of {rounds} interleaved "
            "rounds (`python -m bench.bench_chat --write`).",
            "",
            f"**Many conversations on the bot's CPU.** {users} users at once, {TURNS} turns each "
            f"(each turn carries the conversation so far), {NEW_TOKENS} new tokens per turn, "
            "every user with their own temperature; a SmolLM2-360M-size Llama with random weights.",
            "",
            "| | tokens/s | p50 per turn |",
            "|---|---|---|",
            f"| pool (continuous batching) | {pool_tps:.1f} | {pool_p50:.2f} s |",
            f"| naive (one turn at a time) | {naive_tps:.1f} | {naive_p50:.2f} s |",
            f"| ratio | **{pool_tps / naive_tps:.2f}×** | **{pool_p50 / naive_p50:.2f}×** |",
            "",
            f"**The remote hop.** The same tiny chat model in the bot's process and behind "
            f"`transformers serve` on 127.0.0.1 (streamed over HTTP), one conversation of "
            f"{HOP_TURNS} turns, {HOP_TOKENS} new tokens each.",
            "",
            "| | time to first token (p50) | per turn (p50) |",
            "|---|---|---|",
            f"| in process | {local_first * 1000:.0f} ms | {local_turn * 1000:.0f} ms |",
            f"| transformers serve | {remote_first * 1000:.0f} ms | {remote_turn * 1000:.0f} ms |",
            f"| cost of the hop | +{(remote_first - local_first) * 1000:.0f} ms | "
            f"+{(remote_turn - local_turn) * 1000:.0f} ms |",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--models-dir", type=Path, default=Path("/tmp/hfbot-bench-models"))
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    chats = asyncio.run(many_conversations(args.models_dir, args.rounds, args.users))
    hop = asyncio.run(remote_hop(args.models_dir, args.rounds))
    text = report(chats, hop, args.rounds, args.users, (load_before, os.getloadavg()[0]))
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
