"""Webhook mode, /healthz and /metrics: the bot as an operator runs it behind a proxy."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from telegram.ext import ApplicationBuilder

from bot.app.build import build_application
from bot.app.serve import serve
from bot.config import Settings
from bot.offline.emulator import BotApiEmulator
from handlers.request.context import services_of
from tests.support.engine_standins import VllmStandIn
from tests.support.engine_standins import serve as serve_engine
from tests.support.harness import bot_settings, break_database


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebhookBot:
    def __init__(self, emu: BotApiEmulator, port: int, app) -> None:
        self.emu, self.port, self.app = emu, port, app

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def webhook_settings(tmp_path: Path, models: Path, port: int, **overrides: Any) -> Settings:
    return bot_settings(
        tmp_path,
        models,
        webhook_url=f"http://127.0.0.1:{port}",
        webhook_listen="127.0.0.1",
        webhook_port=port,
        webhook_secret="s3cret-token",
        **overrides,
    )


@contextlib.asynccontextmanager
async def serving_webhook(settings: Settings) -> AsyncIterator[WebhookBot]:
    """`hfbot run` in webhook mode against the emulator, until the block ends."""
    async with BotApiEmulator() as emu:
        app = build_application(settings, builder=emu.wire(ApplicationBuilder()), webhook=True)
        stop = asyncio.Event()
        running = asyncio.create_task(serve(settings, app, stop))
        await emu.wait_for("setWebhook", since=0, timeout=60)
        try:
            yield WebhookBot(emu, settings.webhook_port, app)
        finally:
            stop.set()
            await running


@pytest.fixture
async def webhook_bot(tmp_path: Path, tiny_models_dir: Path) -> AsyncIterator[WebhookBot]:
    async with serving_webhook(webhook_settings(tmp_path, tiny_models_dir, free_port())) as bot:
        yield bot


async def test_the_bot_registers_its_webhook_with_a_secret_and_the_updates_it_needs(
    webhook_bot: WebhookBot,
) -> None:
    [call] = await webhook_bot.emu.wait_for("setWebhook", since=0)
    assert call.params["url"] == f"{webhook_bot.base}/telegram"
    assert call.params["secret_token"] == "s3cret-token"
    assert set(call.params["allowed_updates"]) == {
        "message",
        "channel_post",
        "callback_query",
        "inline_query",
        "stopped_message_generation",
    }
    assert call.params.get("drop_pending_updates") in (None, False, "false")


async def test_updates_arrive_through_the_webhook_and_are_answered(webhook_bot: WebhookBot) -> None:
    emu = webhook_bot.emu
    alice = emu.create_user("Alice")
    emu.send_message(alice, emu.private_chat(alice), "/sentiment What a book")
    [reply] = await emu.wait_for("sendMessage", timeout=60)
    assert reply.result["text"].splitlines()[0] in ("POSITIVE", "NEGATIVE")


async def test_a_post_without_the_secret_header_is_refused(webhook_bot: WebhookBot) -> None:
    async with aiohttp.ClientSession() as http:
        update = {
            "update_id": 1,
            "message": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": 1, "type": "private"},
                "text": "/start",
            },
        }
        async with http.post(f"{webhook_bot.base}/telegram", json=update) as response:
            assert response.status == 403
        headers = {"X-Telegram-Bot-Api-Secret-Token": "wrong"}
        async with http.post(
            f"{webhook_bot.base}/telegram", json=update, headers=headers
        ) as response:
            assert response.status == 403


async def test_healthz_on_the_public_port_says_ok_or_not_and_names_parts_to_the_token(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    settings = webhook_settings(tmp_path, tiny_models_dir, free_port(), metrics_token="ops-only")
    operator = {"Authorization": "Bearer ops-only"}
    async with serving_webhook(settings) as bot, aiohttp.ClientSession() as http:
        async with http.get(f"{bot.base}/healthz") as response:
            assert response.status == 200
            assert await response.json() == {"ok": True}
        async with http.get(f"{bot.base}/healthz", headers=operator) as response:
            assert (await response.json())["database"] == "ok"
        services = services_of(bot.app)
        assert services is not None
        break_database(services)
        async with http.get(f"{bot.base}/healthz") as response:
            assert response.status == 503
            assert await response.json() == {"ok": False}, "a stranger learns nothing more"
        guess = {"Authorization": "Bearer guess"}
        async with http.get(f"{bot.base}/healthz", headers=guess) as response:
            assert await response.json() == {"ok": False}
        async with http.get(f"{bot.base}/healthz", headers=operator) as response:
            assert response.status == 503
            body = await response.json()
            assert body["ok"] is False
            assert body["database"] == "unreachable"
            assert body["pool"] == "ok"


async def test_healthz_asks_each_engine_at_most_once_an_interval_however_often_it_is_hit(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    async with serve_engine(VllmStandIn()) as engine:
        settings = webhook_settings(
            tmp_path,
            tiny_models_dir,
            free_port(),
            engines={"gpu": {"base_url": engine.url, "api": "vllm"}},
            health_engine_check_s=3600,
        )
        async with serving_webhook(settings) as bot, aiohttp.ClientSession() as http:

            async def probe() -> int:
                async with http.get(f"{bot.base}/healthz") as response:
                    assert await response.json() == {"ok": True}, "no engine named publicly"
                    return response.status

            before = len(engine.seen)
            statuses = await asyncio.gather(*(probe() for _ in range(30)))
            statuses += [await probe() for _ in range(30)]

    assert statuses == [200] * 60
    assert len(engine.seen) - before <= 1, engine.paths()


async def test_metrics_count_commands_updates_and_pool_batches(webhook_bot: WebhookBot) -> None:
    emu = webhook_bot.emu
    alice = emu.create_user("Alice")
    emu.send_message(alice, emu.private_chat(alice), "/sentiment Lovely")
    await emu.wait_for("sendMessage", timeout=60)
    async with aiohttp.ClientSession() as http, http.get(f"{webhook_bot.base}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    [command] = [line for line in text.splitlines() if line.startswith("hfbot_commands_total{")]
    assert 'outcome="ok"' in command and 'task="sentiment"' in command
    assert command.endswith(" 1.0")
    assert 'model="local/' in command, "a model in a local folder is named by its folder only"
    services = webhook_bot.app.bot_data.services
    assert services is not None
    assert services.settings.default_models["sentiment"] not in command
    assert 'hfbot_updates_total{kind="message"}' in text
    assert 'hfbot_pool_batches_total{size="1"} 1.0' in text
    assert "hfbot_pool_latency_seconds_count 1.0" in text
    assert "hfbot_pool_queue_wait_seconds_count 1.0" in text
    assert "hfbot_pool_loaded_models 1.0" in text
    assert "hfbot_pool_up 1.0" in text
    assert 'hfbot_pool_engine_up{model="text-classification:local/classifier"} 1.0' in text


async def test_in_polling_mode_health_and_metrics_run_on_their_own_port(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    port = free_port()
    settings = bot_settings(tmp_path, tiny_models_dir, metrics_port=port)
    async with BotApiEmulator() as emu:
        app = build_application(settings, builder=emu.wire(ApplicationBuilder()))
        stop = asyncio.Event()
        running = asyncio.create_task(serve(settings, app, stop))
        try:
            await emu.wait_for("getUpdates", since=0, timeout=60)
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
                    assert (await response.json())["database"] == "ok", "the operator's port"
                async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                    assert "hfbot_pool_loaded_models" in await response.text()
                async with http.post(f"http://127.0.0.1:{port}/telegram", json={}) as response:
                    assert response.status in (404, 405), "no webhook route in polling mode"
        finally:
            stop.set()
            await running


async def test_with_a_metrics_port_metrics_leave_the_public_webhook_port_and_need_the_token(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    settings = webhook_settings(
        tmp_path, tiny_models_dir, port, metrics_port=metrics_port, metrics_token="scrape-me"
    )
    async with serving_webhook(settings), aiohttp.ClientSession() as http:
        private = f"http://127.0.0.1:{metrics_port}"
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 404, "not on the public port"
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
        async with http.get(f"{private}/metrics") as response:
            assert response.status == 401
        wrong = {"Authorization": "Bearer guess"}
        async with http.get(f"{private}/metrics", headers=wrong) as response:
            assert response.status == 401
        right = {"Authorization": "Bearer scrape-me"}
        async with http.get(f"{private}/metrics", headers=right) as response:
            assert response.status == 200
            assert "hfbot_pool_loaded_models" in await response.text()


async def test_metric_labels_never_carry_a_local_path(webhook_bot: WebhookBot) -> None:
    alice = webhook_bot.emu.create_user("Alice")
    webhook_bot.emu.send_message(alice, webhook_bot.emu.private_chat(alice), "/sentiment lovely")
    await webhook_bot.emu.wait_for("sendMessage", timeout=60)
    async with aiohttp.ClientSession() as http, http.get(f"{webhook_bot.base}/metrics") as response:
        text = await response.text()

    assert 'model="text-classification:local/classifier"' in text
    assert str(Path(tiny_default_model_dir(webhook_bot))) not in text


def tiny_default_model_dir(bot: WebhookBot) -> str:
    services = services_of(bot.app)
    assert services is not None
    return services.settings.default_models["sentiment"]
