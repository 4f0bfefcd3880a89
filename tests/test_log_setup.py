"""Operators' logs: secrets never written, JSON on request, one line per request without the text."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Settings
from bot.log_setup import configure_logging
from tests.support.harness import bot_settings, running_bot

TOKEN = "123456:SECRET-token-value"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def _configure(stream: io.StringIO, **settings: object) -> None:
    configure_logging(Settings(_env_file=None, telegram_bot_token=TOKEN, **settings))
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]


def test_the_bot_token_is_redacted_whoever_logs_it(captured: io.StringIO) -> None:
    _configure(captured)
    logging.getLogger("somelib").warning("POST http://127.0.0.1:8081/bot%s/getUpdates", TOKEN)
    assert TOKEN not in captured.getvalue()
    assert "bot[redacted]/getUpdates" in captured.getvalue()


def test_json_lines_carry_the_request_fields(captured: io.StringIO) -> None:
    _configure(captured, log_format="json")
    logging.getLogger("handlers.commands.model_commands").info(
        "done",
        extra={
            "task": "sentiment",
            "model": "m",
            "latency_ms": 12.5,
            "outcome": "ok",
            "user_id": 7,
        },
    )
    entry = json.loads(captured.getvalue().strip().splitlines()[-1])
    assert entry["task"] == "sentiment" and entry["latency_ms"] == 12.5 and entry["user_id"] == 7
    assert entry["level"] == "INFO"


async def test_each_request_is_logged_with_outcome_and_never_its_text(
    tmp_path: Path, tiny_models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_bot(bot_settings(tmp_path, tiny_models_dir)) as bot:
        alice = bot.person("Alice")
        with caplog.at_level(logging.INFO, logger="handlers.commands.model_commands"):
            await bot.ask(alice, bot.emu.private_chat(alice), "/sentiment my secret diary entry")
            await bot.settle()
    [line] = [r for r in caplog.records if getattr(r, "task", None) == "sentiment"]
    assert line.outcome == "ok" and line.user_id == alice.id and line.latency_ms > 0
    assert "secret diary" not in caplog.text
