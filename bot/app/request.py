"""The HTTP layer to the Bot API: failed calls counted for /metrics, passing failures retried.

Telegram's servers answer 5xx now and then, and connections drop. A reply lost to
one of those would leave its person without an answer, so such a call is sent
again a few times with backoff. The price: a connection dropped after Telegram
executed the call shows that message twice; a duplicate is better than silence.
Timeouts are not retried (the call may be running), nor are long polls (the
updater has its own loop), nor 4xx answers (429 is the rate limiter's).
"""

from __future__ import annotations

import asyncio
from typing import Any

from telegram.error import NetworkError, TimedOut
from telegram.request import HTTPXRequest

from bot.monitoring.bot_metrics import BotMetrics

RETRY_DELAYS_S = (0.25, 0.5, 1.0)


class CountingRequest(HTTPXRequest):
    """PTB's own HTTPX request; non-2xx answers counted by method and status, 5xx retried."""

    def __init__(
        self,
        metrics: BotMetrics,
        *,
        retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics
        self._retry_delays = retry_delays_s

    async def do_request(
        self, url: str, method: str, *args: Any, **kwargs: Any
    ) -> tuple[int, bytes]:
        endpoint = url.rsplit("/", 1)[-1]
        delays = () if endpoint.lower() == "getupdates" else self._retry_delays
        attempt = 0
        while True:
            try:
                code, payload = await super().do_request(url, method, *args, **kwargs)
            except NetworkError as error:
                self._metrics.telegram_errors.labels(endpoint, "network").inc()
                if isinstance(error, TimedOut) or attempt >= len(delays):
                    raise
            else:
                if code >= 300:
                    self._metrics.telegram_errors.labels(endpoint, str(code)).inc()
                if code < 500 or attempt >= len(delays):
                    return code, payload
            await asyncio.sleep(delays[attempt])
            attempt += 1
