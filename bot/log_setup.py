"""Logging for operators: readable lines by default, JSON with a setting, secrets never written.

Request lines carry task, model, latency, outcome and user id; the text people
send is not logged unless the level is DEBUG. Any record that would contain
a secret (the bot token, the Hugging Face token, the webhook secret, whether
configured or made at start, the metrics token, each engine's token) has it
replaced, whichever library wrote it (httpx, for one, logs request URLs, and
Bot API URLs hold the token).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from bot.config import Settings

REDACTED = "[redacted]"
QUIET_LIBRARIES = (
    "httpx",
    "httpcore",
    "apscheduler",
    "telegram.ext.ExtBot",
    "alembic.runtime.plugins",
)


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then blanks every secret in the finished line.

    Redacting the finished text covers what a filter on the message would
    miss: a traceback's exception text (PTB's InvalidToken names the token),
    `extra=` fields and anything a library formats itself.
    """

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self._inner = inner
        self._secrets = [secret for secret in secrets if secret]

    def add(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets.append(secret)

    def format(self, record: logging.LogRecord) -> str:
        return redact(self._inner.format(record), self._secrets)


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the `extra=` fields a request log line carries."""

    FIELDS = ("task", "model", "latency_ms", "outcome", "user_id", "chat_id")

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **{name: getattr(record, name) for name in self.FIELDS if hasattr(record, name)},
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(settings: Settings, to_file: Path | None = None) -> None:
    """Log to stderr, or to `to_file` (the console keeps the terminal for the conversation)."""
    handler: logging.Handler
    if to_file is None:
        handler = logging.StreamHandler()
    else:
        to_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(to_file, encoding="utf-8")
    inner = (
        JsonFormatter()
        if settings.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(RedactingFormatter(inner, settings_secrets(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def settings_secrets(settings: Settings) -> list[str]:
    """Every secret the settings hold or name: none of them may ever be written out."""
    secrets = (
        settings.telegram_bot_token,
        settings.hf_token,
        settings.webhook_secret,
        settings.metrics_token,
    )
    engine_tokens = (engine.token() for engine in settings.engines.values())
    return [secret.get_secret_value() for secret in secrets if secret is not None] + [
        token for token in engine_tokens if token
    ]


def keep_secret(secret: str) -> None:
    """Blank `secret` in every line from now on: one the bot made itself after logging
    was set up (a random webhook secret)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, RedactingFormatter):
            handler.formatter.add(secret)
