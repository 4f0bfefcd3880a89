"""The HTTP layer to the Bot API, counting failed calls for /metrics."""

from __future__ import annotations

from typing import Any

from telegram.request import HTTPXRequest

from bot.delivery.telemetry import BotMetrics


class CountingRequest(HTTPXRequest):
    """PTB's own HTTPX request; every non-2xx answer is counted by method and status code."""

    def __init__(self, metrics: BotMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics

    async def do_request(
        self, url: str, method: str, *args: Any, **kwargs: Any
    ) -> tuple[int, bytes]:
        code, payload = await super().do_request(url, method, *args, **kwargs)
        if code >= 300:
            self._metrics.telegram_errors.labels(url.rsplit("/", 1)[-1], str(code)).inc()
        return code, payload
