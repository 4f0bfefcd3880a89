"""Logging for operators: readable lines by default, JSON with a setting, secrets never written.

Request lines carry task, model, latency, outcome and user id; the text people
send is not logged unless the level is DEBUG. Any record that would contain
the bot token or the Hugging Face token has it replaced, whichever library
wrote it (httpx, for one, logs request URLs, and Bot API URLs hold the token).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from bot.config import Settings

REDACTED = "[redacted]"
QUIET_LIBRARIES = ("httpx", "httpcore", "apscheduler", "telegram.ext.ExtBot")


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self._secrets):
            for secret in self._secrets:
                message = message.replace(secret, REDACTED)
            record.msg, record.args = message, None
        return True


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


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    secrets = [
        secret.get_secret_value()
        for secret in (settings.telegram_bot_token, settings.hf_token, settings.webhook_secret)
        if secret is not None
    ]
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
