"""The real bot (PTB Application, store, pool, vetter) against the local Bot API emulator.

Tiny local models stand in for every task's default, so the whole path runs
offline: a fake person sends a message, the bot polls it, the pool runs a
model, and the test reads the reply the emulator recorded.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram.ext import Application, ApplicationBuilder

from bot.app.build import build_application
from bot.config import Settings
from bot.engine.pool import PipelinePool
from bot.offline.demo_models import build_demo_models
from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.world import FakeChat, FakeUser
from handlers import ALLOWED_UPDATES
from handlers.request.context import Services, services_of
from models.database import create_engine


def stand_in_model(
    answer: Any, *, release: threading.Event | None = None
) -> Callable[[str, str], Any]:
    """A loader whose every model answers `answer` per input, once `release` is set (if given).

    Swapped into the pool (`RunningBot.swap_pool`) it makes a model slow, or its
    output whatever a test needs, without building one.
    """

    def load(task: str, model_id: str) -> Any:
        def run(inputs: list[Any], *, batch_size: int, **params: Any) -> list[Any]:
            if release is not None:
                release.wait(30)
            return [answer for _ in inputs]

        return run

    return load


POSITIVE = [{"label": "POSITIVE", "score": 0.9}]


def tiny_default_models(directory: Path) -> dict[str, str]:
    """Every task's default model, as a tiny local model built (once) in `directory`."""
    return build_demo_models(directory)


def bot_settings(tmp_path: Path, models_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "telegram_bot_token": "123456:TEST",
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "default_models": tiny_default_models(models_dir),
        "admin_ids": [1],
        "pool_max_loaded_models": 8,
        "pool_max_wait_ms": 20,
        "rate_limit_per_minute": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@dataclass
class RunningBot:
    emu: BotApiEmulator
    app: Application
    settings: Settings
    people: dict[str, FakeUser] = field(default_factory=dict)

    @property
    def services(self) -> Services:
        found = services_of(self.app)
        assert found is not None
        return found

    def person(self, name: str, language: str = "en") -> FakeUser:
        if name not in self.people:
            self.people[name] = self.emu.create_user(
                name, username=name.lower(), language_code=language
            )
        return self.people[name]

    async def swap_pool(self, loader: Any, **settings: Any) -> None:
        """Replace the pool with one whose models come from `loader` (stubs, slow or broken)."""
        old = self.services.pool
        self.services.pool = PipelinePool(self.settings.model_copy(update=settings), loader=loader)
        await old.close()

    def break_database(self) -> None:
        break_database(self.services)

    async def settle(self) -> None:
        """Until every update sent so far is fully handled (usage logged and all).

        The updater queues a batch before it polls again, so a poll answered after
        the emulator ran dry means every update is in the application's queue,
        whose `join()` returns once each queued update has been processed.
        """
        await self.emu.wait_until(lambda: self.emu.pending_updates == 0)
        await self.emu.wait_for("getUpdates", since=len(self.emu.calls), timeout=30)
        await self.app.update_queue.join()

    async def ask(
        self,
        user: FakeUser,
        chat: FakeChat,
        text: str,
        *,
        reply_to: int | None = None,
        replies: int = 1,
        as_chat: FakeChat | None = None,
    ) -> list[str]:
        """Send `text` as `user`; the text of the bot's answer to it, as finally shown.

        A streamed answer is read after its final edit (when the Stop button
        is gone), an answer that replaced a queue status line once it did; a long
        answer's further parts follow as `replies` messages.
        """
        since = len(self.emu.calls)
        sent = self.emu.send_message(user, chat, text, reply_to=reply_to, as_chat=as_chat)
        [first] = await self.emu.wait_for(
            "sendMessage",
            lambda call: _replies_to(call, sent["message_id"]),
            since=since,
            timeout=60,
        )
        message = first.result
        if _is_queue_status(message):
            message = await self._after_queue_status(sent["message_id"], message, since)
        if _has_stop_button(message):
            [final] = await self.emu.wait_for(
                "editMessageText",
                lambda call: (
                    isinstance(call.result, dict)
                    and call.result.get("message_id") == message["message_id"]
                    and not _has_stop_button(call.result)
                ),
                since=since,
                timeout=60,
            )
            message = final.result
        texts = [message["text"]]
        if replies > 1:
            more = await self.emu.wait_for(
                "sendMessage",
                lambda call: (
                    call.params.get("chat_id") == chat.id
                    and not _replies_to(call, sent["message_id"])
                ),
                count=replies - 1,
                since=since,
                timeout=60,
            )
            texts += [call.result["text"] for call in more[: replies - 1]]
        return texts

    async def _after_queue_status(
        self, asked_id: int, status: dict[str, Any], since: int
    ) -> dict[str, Any]:
        """The answer to a request that showed a queue status line: that line edited into
        the answer, or (a long answer) a new reply."""

        def answer() -> dict[str, Any] | None:
            for call in self.emu.calls[since:]:
                result = call.result
                if not isinstance(result, dict) or _is_queue_status(result):
                    continue
                edited = call.method == "editMessageText" and (
                    result.get("message_id") == status["message_id"]
                )
                if edited or (call.method == "sendMessage" and _replies_to(call, asked_id)):
                    return result
            return None

        await self.emu.wait_until(lambda: answer() is not None, timeout=60)
        found = answer()
        assert found is not None
        return found


def answered_in_order(emu: BotApiEmulator, chat_id: int, asked: dict[int, str]) -> list[str]:
    """The questions the bot's messages answer, in the order they appear: a message of its
    own answers the message it replies to; a shared one each question it quotes."""
    found: list[str] = []
    for message in emu.sent_messages(chat_id):
        quoted = [q for q in asked.values() if q in message["text"]]
        if quoted:
            found += sorted(quoted, key=message["text"].index)
        else:
            found.append(asked[message["reply_to_message"]["message_id"]])
    return found


def _is_queue_status(message: dict[str, Any]) -> bool:
    return str(message.get("text", "")).startswith("⏳")


def _replies_to(call: Any, message_id: int) -> bool:
    return (
        isinstance(call.result, dict)
        and call.result.get("reply_to_message", {}).get("message_id") == message_id
    )


def _has_stop_button(message: dict[str, Any]) -> bool:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return any(
        button.get("callback_data", "").startswith("stop:") for row in rows for button in row
    )


def break_database(found: Services) -> None:
    """Point the store at a server that is not there, as if the database went down."""
    found.store.database.rebind(create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/gone"))


@contextlib.asynccontextmanager
async def running_bot(
    settings: Settings, emu: BotApiEmulator | None = None, **emulator_options: Any
) -> AsyncIterator[RunningBot]:
    """Start the emulator (unless one is given, already running) and the bot in polling mode;
    stop both afterwards."""
    async with contextlib.AsyncExitStack() as stack:
        if emu is None:
            emu = await stack.enter_async_context(BotApiEmulator(**emulator_options))
        app = build_application(settings, builder=emu.wire(ApplicationBuilder()))
        async with app:
            assert app.post_init is not None and app.post_shutdown is not None
            await app.post_init(app)
            await app.start()
            assert app.updater is not None
            await app.updater.start_polling(
                poll_interval=0, timeout=1, allowed_updates=ALLOWED_UPDATES
            )
            try:
                yield RunningBot(emu, app, settings)
            finally:
                await app.updater.stop()
                await app.stop()
                await app.post_shutdown(app)
