"""Conversations and /generate on an inference engine the operator already runs.

The engine is a real `transformers serve` process on 127.0.0.1 with a tiny chat
model; the bot talks to it through huggingface_hub's AsyncInferenceClient.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.engine.chat import ChatPrompt
from bot.engine.remote import engine_parameters
from bot.offline.local_engine import Serving, free_port, transformers_serve
from tests.support.engine_standins import OPERATOR_TOKEN, Elsewhere, RecordingProxy, serve
from tests.support.harness import RunningBot, bot_settings, running_bot

STOPPED = "(stopped)"
# As long an answer as the tiny model's context allows: seconds of streaming to act within.
LONG = 440


@pytest.fixture(scope="module")
def serving(tiny_chat: Path) -> Iterator[Serving]:
    with transformers_serve(tiny_chat) as server:
        yield server


def remote_settings(tmp_path: Path, models: Path, url: str, model: str, **overrides: Any) -> Any:
    defaults = bot_settings(tmp_path, models).default_models
    return bot_settings(
        tmp_path,
        models,
        engines={"serve": {"base_url": url, "timeout_s": 60}},
        default_models={**defaults, "chat": f"serve:{model}", "generate": f"serve:{model}"},
        **overrides,
    )


@pytest.fixture
async def remote_bot(
    tmp_path: Path, tiny_models_dir: Path, serving: Serving
) -> AsyncIterator[RunningBot]:
    settings = remote_settings(
        tmp_path, tiny_models_dir, serving.url, serving.model, max_new_tokens_cap=LONG
    )
    async with running_bot(settings) as running:
        yield running


def record_prompts(bot: RunningBot) -> list[Any]:
    seen: list[Any] = []
    submit = bot.services.pool.submit

    async def recording(task: str, model_id: str, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((model_id, inputs))
        return await submit(task, model_id, inputs, *args, **kwargs)

    bot.services.pool.submit = recording  # type: ignore[method-assign]
    return seen


async def test_a_conversation_on_the_engine_carries_its_history_and_streams(
    remote_bot: RunningBot,
) -> None:
    seen = record_prompts(remote_bot)
    alice = remote_bot.person("Alice")
    chat = remote_bot.emu.private_chat(alice)
    await remote_bot.ask(alice, chat, f"/set chat max_new_tokens {LONG}")

    [first] = await remote_bot.ask(alice, chat, "Hello, I am Alice.")
    await remote_bot.settle()
    [second] = await remote_bot.ask(alice, chat, "Who am I?")
    await remote_bot.settle()

    assert first and second
    model_id, prompt = seen[-1]
    assert model_id.startswith("serve:")
    assert isinstance(prompt, ChatPrompt)
    assert [m.content for m in prompt.history if m.role == "user"] == ["Hello, I am Alice."]
    assert remote_bot.emu.drafts(chat.id), "the answer streamed as a message draft"
    stats = remote_bot.services.pool.metrics.snapshot().engines["serve"]
    assert stats.requests.get("ok") == 2 and stats.first_token_count == 2


async def test_generate_runs_on_the_engine_too(remote_bot: RunningBot) -> None:
    alice = remote_bot.person("Alice")
    await remote_bot.ask(
        alice, remote_bot.emu.private_chat(alice), "/set generate max_new_tokens 8"
    )
    [reply] = await remote_bot.ask(alice, remote_bot.emu.private_chat(alice), "/generate Once upon")
    assert reply.startswith("Once upon")


async def test_chat_and_generate_reach_the_engine_with_its_token_alone(
    tmp_path: Path,
    tiny_models_dir: Path,
    serving: Serving,
    elsewhere: Elsewhere,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real engine behind a recording proxy, twice: once with a token, once without;
    the operator's HF_TOKEN is set, and reaches neither."""
    monkeypatch.setenv("SERVE_TOKEN", "serve-secret")
    async with (
        serve(RecordingProxy(target=serving.url)) as guarded,
        serve(RecordingProxy(target=serving.url)) as open_engine,
    ):
        defaults = bot_settings(tmp_path, tiny_models_dir).default_models
        settings = bot_settings(
            tmp_path,
            tiny_models_dir,
            engines={
                "guarded": {"base_url": guarded.url, "token_env": "SERVE_TOKEN"},
                "open": {"base_url": open_engine.url},
            },
            default_models={
                **defaults,
                "chat": f"guarded:{serving.model}",
                "generate": f"open:{serving.model}",
            },
        )
        async with running_bot(settings) as bot:
            alice = bot.person("Alice")
            chat = bot.emu.private_chat(alice)
            await bot.ask(alice, chat, "/set chat max_new_tokens 8")
            await bot.ask(alice, chat, "/set generate max_new_tokens 8")
            [answer] = await bot.ask(alice, chat, "Hello there")
            [continued] = await bot.ask(alice, chat, "/generate Once upon")

    assert answer and continued.startswith("Once upon")
    assert "POST /v1/chat/completions" in guarded.paths()
    assert "POST /v1/chat/completions" in open_engine.paths()
    assert {seen.authorization for seen in guarded.seen} == {"Bearer serve-secret"}
    assert {seen.authorization for seen in open_engine.seen} == {None}
    assert elsewhere.seen == []
    assert OPERATOR_TOKEN not in repr(guarded.seen + open_engine.seen)


def on_first_text(bot: RunningBot, act: Callable[[], None]) -> None:
    """Do `act` the moment the engine's first words arrive: a person's Stop, or a crash,
    at a point no timing can make the answer finish before."""
    submit = bot.services.pool.submit

    async def watched(*args: Any, on_text: Callable[[str], None] | None = None, **kw: Any) -> Any:
        acted: list[bool] = []

        def first(text: str) -> None:
            if on_text is not None:
                on_text(text)
            if text and not acted:
                acted.append(True)
                act()

        return await submit(*args, on_text=first, **kw)

    bot.services.pool.submit = watched  # type: ignore[method-assign]


async def test_stop_closes_the_stream_and_keeps_what_was_shown(remote_bot: RunningBot) -> None:
    alice = remote_bot.person("Alice")
    chat = remote_bot.emu.private_chat(alice)
    await remote_bot.ask(alice, chat, f"/set chat max_new_tokens {LONG}")
    on_first_text(remote_bot, lambda: remote_bot.services.running.cancel_here(alice.id))
    remote_bot.emu.send_message(alice, chat, "Tell me a very long story.")
    [stopped] = await remote_bot.emu.wait_for(
        "sendMessage", lambda c: STOPPED in c.params.get("text", ""), timeout=60
    )
    await remote_bot.settle()

    assert stopped.params["text"].strip() != STOPPED, "what was written is still there"
    turns = (await remote_bot.services.store.conversations.ongoing(chat.id, alice.id)).turns
    assert [turn.role for turn in turns] == ["user", "assistant"] and turns[1].content


async def test_a_model_the_engine_does_not_serve_is_refused_by_name(
    remote_bot: RunningBot, serving: Serving
) -> None:
    alice = remote_bot.person("Alice")
    admin = remote_bot.person("Admin")
    remote_bot.services.settings.admin_ids.append(admin.id)
    await remote_bot.ask(admin, remote_bot.emu.private_chat(admin), "/allow serve:acme/not-there")
    [reply] = await remote_bot.ask(
        alice, remote_bot.emu.private_chat(alice), "/model chat serve:acme/not-there"
    )
    assert reply == "The engine “serve” does not serve “acme/not-there”."
    assert serving.model not in reply, "what else it serves is the operator's"
    [photo] = await remote_bot.ask(
        alice, remote_bot.emu.private_chat(alice), f"/model whatis serve:{serving.model}"
    )
    assert "runs on this bot's own models only" in photo


async def test_an_engine_down_at_start_gets_a_clear_answer_and_health_says_which(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    """Nothing listens on the port: the bot retries with backoff, then says so."""
    port = free_port()
    settings = remote_settings(
        tmp_path,
        tiny_models_dir,
        f"http://127.0.0.1:{port}",
        "acme/model",
        metrics_port=free_port(),
    )
    async with running_bot(settings) as bot:
        alice = bot.person("Alice")
        [reply] = await bot.ask(alice, bot.emu.private_chat(alice), "Hello?")
        from bot.app.web import health

        healthy, parts = await health(bot.app)

    assert reply == (
        "I can't reach the engine that serves this model (serve) right now. Please try again later."
    )
    assert parts["engine:serve"] == "unreachable"
    assert healthy, "an optional engine being down does not make the bot unhealthy"


async def test_the_engine_killed_mid_stream_leaves_the_text_and_a_clear_line(
    tmp_path: Path, tiny_models_dir: Path, tiny_chat: Path
) -> None:
    with transformers_serve(tiny_chat) as doomed:
        settings = remote_settings(
            tmp_path, tiny_models_dir, doomed.url, doomed.model, max_new_tokens_cap=LONG
        )
        async with running_bot(settings) as bot:
            alice = bot.person("Alice")
            chat = bot.emu.private_chat(alice)
            await bot.ask(alice, chat, f"/set chat max_new_tokens {LONG}")
            on_first_text(bot, doomed.process.kill)
            bot.emu.send_message(alice, chat, "Tell me a very long story.")
            [broken] = await bot.emu.wait_for(
                "sendMessage",
                lambda c: "stopped answering properly" in c.params.get("text", ""),
                timeout=60,
            )
            await bot.settle()
            rows = await bot.services.store.conversations.ongoing(chat.id, alice.id)

    text = broken.params["text"]
    assert text.index("stopped answering properly") > 0, "the partial answer comes first"
    assert [turn.role for turn in rows.turns] == ["user", "assistant"]


def test_parameters_reach_the_engine_under_its_names() -> None:
    params = {"max_new_tokens": 30, "temperature": 0.7, "top_p": 0.9, "top_k": 40}
    openai = engine_parameters({**params, "do_sample": True})
    tgi = engine_parameters({**params, "do_sample": True}, extras=True)
    greedy = engine_parameters({**params, "do_sample": False}, extras=True)

    assert openai == {"max_tokens": 30, "temperature": 0.7, "top_p": 0.9}
    assert tgi == {**openai, "extra_body": {"top_k": 40}}
    assert greedy == {"max_tokens": 30, "temperature": 0.0}


async def test_busy_and_garbage_answers_map_to_clear_messages(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    """An engine that answers 503, then one that answers nonsense."""
    answers: list[tuple[int, str]] = []

    async def chat_completions(request: aiohttp.web.Request) -> aiohttp.web.Response:
        status, body = answers.pop(0)
        return aiohttp.web.Response(status=status, text=body, content_type="text/event-stream")

    async def models(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"data": [{"id": "acme/model"}]})

    app = aiohttp.web.Application()
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", models)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        settings = remote_settings(
            tmp_path, tiny_models_dir, f"http://127.0.0.1:{port}", "acme/model"
        )
        async with running_bot(settings) as bot:
            alice = bot.person("Alice")
            chat = bot.emu.private_chat(alice)
            await bot.ask(alice, chat, "/set stream off")
            answers.append((503, "overloaded"))
            [busy] = await bot.ask(alice, chat, "Hello?")
            answers.append((200, "data: {this is not json}\n\n"))
            [garbage] = await bot.ask(alice, chat, "Hello again?")
    finally:
        await runner.cleanup()

    assert (
        busy == "The engine that serves this model (serve) is busy. Please try again in a moment."
    )
    assert garbage == "The engine that serves this model (serve) stopped answering properly."
