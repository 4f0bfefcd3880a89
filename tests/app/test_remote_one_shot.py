"""One-shot commands on inference engines: each reaches its declared engine and nothing else.

The engines that serve these tasks (text-embeddings-inference, vLLM with a
classifier, an Inference Endpoint's default container) cannot run here: they are
stand-ins on 127.0.0.1 following each one's HTTP API
(tests/support/engine_standins.py) and recording what they receive. The Hub and
its inference router are a recorder too, with the operator's HF_TOKEN set: they
must hear nothing, and no engine may see that token.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.engine_standins import (
    Elsewhere,
    EndlessChatStandIn,
    PipelineStandIn,
    Recorder,
    TeiStandIn,
    VllmStandIn,
    serve,
)
from tests.support.harness import bot_settings, running_bot


def _zero_shot(inputs: Any, parameters: dict[str, Any]) -> Any:
    labels = list(parameters["candidate_labels"])
    return {"sequence": inputs, "labels": labels[::-1], "scores": [0.7, 0.3][: len(labels)]}


PIPELINES: dict[str, tuple[str, str, Any]] = {
    # engine: (command, model, what its pipeline answers)
    "ep-sent": (
        "sentiment",
        "acme/sent",
        lambda i, p: [{"label": "NEGATIVE", "score": 0.6}, {"label": "POSITIVE", "score": 0.4}],
    ),
    "ep-ner": (
        "ner",
        "acme/ner",
        lambda i, p: [{"entity_group": "PER", "score": 0.99, "word": "Ada", "start": 0, "end": 3}],
    ),
    "ep-sum": ("summarize", "acme/sum", lambda i, p: [{"summary_text": "Short and sweet."}]),
    "ep-tr": ("translate", "acme/tr", lambda i, p: [{"translation_text": "你好，世界"}]),
    "ep-zs": ("classify", "acme/zs", _zero_shot),
}


async def test_each_one_shot_command_reaches_its_engine_with_its_token_and_nothing_else(
    tmp_path: Path,
    tiny_models_dir: Path,
    elsewhere: Elsewhere,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with AsyncExitStack() as stack:
        standins: dict[str, Recorder] = {
            "tei": await stack.enter_async_context(serve(TeiStandIn(token="tei-secret"))),
            "vllm": await stack.enter_async_context(serve(VllmStandIn(token="vllm-secret"))),
        }
        engines: dict[str, Any] = {
            "tei": {"base_url": standins["tei"].url, "api": "tei", "token_env": "TOKEN_TEI"},
            "vllm": {"base_url": standins["vllm"].url, "api": "vllm", "token_env": "TOKEN_VLLM"},
        }
        monkeypatch.setenv("TOKEN_TEI", "tei-secret")
        monkeypatch.setenv("TOKEN_VLLM", "vllm-secret")
        for name, (_, model, answer) in PIPELINES.items():
            standin = PipelineStandIn(token=f"{name}-secret", answer=answer)
            standins[name] = await stack.enter_async_context(serve(standin))
            env = f"TOKEN_{name.upper().replace('-', '_')}"
            monkeypatch.setenv(env, f"{name}-secret")
            engines[name] = {
                "base_url": standin.url,
                "api": "pipelines",
                "models": [model],
                "token_env": env,
            }
        settings = bot_settings(tmp_path, tiny_models_dir, engines=engines)
        async with running_bot(settings) as bot:
            alice = bot.person("Alice")
            chat = bot.emu.private_chat(alice)
            admin = bot.person("Admin")
            bot.services.settings.admin_ids.append(admin.id)
            for engine in ("tei", "vllm", "ep-sent"):
                await bot.ask(admin, bot.emu.private_chat(admin), f"/allow {engine}:acme/sent")
            for engine, (_, model, _) in PIPELINES.items():
                await bot.ask(admin, bot.emu.private_chat(admin), f"/allow {engine}:{model}")
            replies: dict[str, str] = {}
            for engine in ("tei", "vllm", "ep-sent"):
                [picked] = await bot.ask(alice, chat, f"/model sentiment {engine}:acme/sent")
                assert engine in picked
                [replies[engine]] = await bot.ask(alice, chat, "/sentiment What a lovely day")
            for engine, (command, model, _) in PIPELINES.items():
                if command == "sentiment":
                    continue
                await bot.ask(alice, chat, f"/model {command} {engine}:{model}")
                text = (
                    "Ada cooked. | sport, food"
                    if command == "classify"
                    else "Ada wrote the first program."
                )
                [replies[engine]] = await bot.ask(alice, chat, f"/{command} {text}")

    assert replies["tei"].startswith("POSITIVE") and "97%" in replies["tei"]
    assert replies["vllm"].startswith("POSITIVE") and "90%" in replies["vllm"]
    assert replies["ep-sent"].startswith("NEGATIVE") and "60%" in replies["ep-sent"]
    assert replies["ep-ner"].startswith("Ada[PER]")
    assert replies["ep-sum"] == "Short and sweet."
    assert replies["ep-tr"] == "你好，世界"
    assert replies["ep-zs"].startswith("food")

    tei, vllm = standins["tei"], standins["vllm"]
    assert "POST /predict" in tei.paths()
    [predict] = [seen for seen in tei.seen if seen.path == "/predict"]
    assert predict.body == {"inputs": "What a lovely day", "truncate": True}
    [classify] = [seen for seen in vllm.seen if seen.path == "/classify"]
    assert classify.body == {"model": "acme/sent", "input": "What a lovely day"}
    for name in PIPELINES:
        assert "POST /" in standins[name].paths(), name
    zero_shot = [seen for seen in standins["ep-zs"].seen if seen.path == "/"]
    assert zero_shot[0].body["parameters"]["candidate_labels"] == ["sport", "food"]
    for name, standin in standins.items():
        assert {seen.authorization for seen in standin.seen} == {f"Bearer {name}-secret"}, name
        assert set(standin.paths()) <= {
            "GET /info",
            "GET /health",
            "GET /v1/models",
            "POST /predict",
            "POST /classify",
            "POST /",
        }
    assert elsewhere.seen == [], "nothing went to the Hub or its router"


async def test_a_command_the_engine_has_no_route_for_is_refused_by_name(
    tmp_path: Path, tiny_models_dir: Path, elsewhere: Elsewhere
) -> None:
    async with serve(TeiStandIn()) as tei:
        settings = bot_settings(
            tmp_path, tiny_models_dir, engines={"tei": {"base_url": tei.url, "api": "tei"}}
        )
        async with running_bot(settings) as bot:
            alice = bot.person("Alice")
            [reply] = await bot.ask(alice, bot.emu.private_chat(alice), "/model ner tei:acme/sent")

    assert reply == "The engine “tei” does not serve /ner."
    assert "POST /predict" not in tei.paths()
    assert elsewhere.seen == []


async def test_an_engine_that_redirects_elsewhere_is_not_followed_there(
    tmp_path: Path, tiny_models_dir: Path, elsewhere: Elsewhere, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compromised or misconfigured engine cannot send the text (or its token) on."""

    class Redirecting(PipelineStandIn):
        def routes(self, app: web.Application) -> None:
            async def away(_: web.Request) -> web.Response:
                raise web.HTTPTemporaryRedirect(elsewhere.url + "/collect")

            async def ok(_: web.Request) -> web.Response:
                return web.Response(text="Ok")

            app.router.add_get("/health", ok)
            app.router.add_post("/", away)

    monkeypatch.setenv("TOKEN_EP", "ep-secret")

    async with serve(Redirecting(token="ep-secret")) as engine:
        defaults = bot_settings(tmp_path, tiny_models_dir).default_models
        settings = bot_settings(
            tmp_path,
            tiny_models_dir,
            default_models={**defaults, "sentiment": "ep:acme/sent"},
            engines={
                "ep": {
                    "base_url": engine.url,
                    "api": "pipelines",
                    "models": ["acme/sent"],
                    "token_env": "TOKEN_EP",
                }
            },
        )
        async with running_bot(settings) as bot:
            alice = bot.person("Alice")
            chat = bot.emu.private_chat(alice)
            [reply] = await bot.ask(alice, chat, "/sentiment Dear diary")

    assert reply == "The engine that serves this model (ep) stopped answering properly."
    assert engine.paths() == ["GET /health", "POST /"]
    assert elsewhere.seen == [], "the redirect was refused before it left"


async def test_a_streamed_answer_is_read_up_to_a_bound_cut_there_and_stored_as_shown(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    """An engine that ignores max_tokens cannot flood the chat or the history."""
    async with serve(EndlessChatStandIn()) as engine:
        defaults = bot_settings(tmp_path, tiny_models_dir).default_models
        settings = bot_settings(
            tmp_path,
            tiny_models_dir,
            engines={"chatty": {"base_url": engine.url, "max_reply_chars": 3000}},
            default_models={**defaults, "chat": "chatty:acme/chatty"},
        )
        async with running_bot(settings) as bot:
            alice = bot.person("Alice")
            chat = bot.emu.private_chat(alice)
            [answer] = await bot.ask(alice, chat, "Tell me everything.")
            await bot.settle()
            turns = (await bot.services.store.conversations.ongoing(chat.id, alice.id)).turns

    assert answer.endswith("it is cut here.")
    assert answer.startswith("blah blah")
    assert [turn.role for turn in turns] == ["user", "assistant"]
    assert len(turns[1].content) <= 3000 and turns[1].content.startswith("blah blah")
    assert engine.sent_chars < 200_000, "the bot stopped reading"
