"""Running the bot for real: polling or webhook, and a graceful stop on SIGTERM/SIGINT.

Telegram that cannot be reached at start (no network, a DNS failure, a refused
or silent connection, a 5xx) is one log line per attempt, tried again with
backoff until it answers or a stop signal comes; a token Telegram rejects is
not retried (it will not heal). Polling that loses Telegram later logs one
line per failure while PTB's own loop backs off, and so does PTB's last
getUpdates on the way out when Telegram is gone by then.

Replicas (`HFBOT_REDIS_URL`) in polling mode poll one at a time, the one holding
the poller lease (`bot.app.polling`); without Redis the one process polls.

On a stop signal the bot stops taking updates, lets requests in flight finish
until `shutdown_grace_s`, then closes the pool, which answers every request
still waiting with "I'm restarting" (so nobody is left without a reply), and
finally closes the database. Nothing a user saved is lost: every settings
write commits before its reply is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from telegram.error import NetworkError, RetryAfter

from bot.app.build import build_application
from bot.app.polling import Polling
from bot.app.web import build_web_app, uvicorn_server, webhook_secret
from bot.config import Settings
from bot.delivery.order import ChatOrderedUpdateProcessor
from handlers import ALLOWED_UPDATES
from handlers.request.context import BotApplication, services_of

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# Seconds between attempts to reach Telegram at start; the last one repeats.
CONNECT_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


async def serve(
    settings: Settings, application: BotApplication | None = None, stop: asyncio.Event | None = None
) -> None:
    """Run until a stop signal (or `stop` is set, for embedding), then shut down gracefully."""
    webhook = settings.webhook_url is not None
    application = application or build_application(settings, webhook=webhook)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    secret = webhook_secret(settings) if webhook else None
    _one_line_updater_errors()
    if not await reach_telegram(application, settings, stop):
        _forget_signals(loop)
        return
    async with application:
        assert application.post_init is not None and application.post_shutdown is not None
        await application.post_init(application)
        await application.start()
        servers = web_servers(application, settings, secret)
        serving = [asyncio.create_task(server.serve()) for server in servers]
        for server, task in zip(servers, serving, strict=True):
            await _listening(server, task)
        if webhook:
            await application.bot.set_webhook(
                url=f"{settings.webhook_url.rstrip('/')}{settings.webhook_path}",  # type: ignore[union-attr]
                secret_token=secret,
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=False,
            )
        polling = None if webhook else polling_of(application)
        if polling is not None:
            await polling.start()
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait([*serving, stopping], return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping: no new updates; finishing requests in flight")
        if polling is not None:
            await polling.stop()
        for server in servers:
            server.should_exit = True
        await drain(application, settings.shutdown_grace_s)
        await application.stop()
        await application.post_shutdown(application)
        running: list[asyncio.Task[Any]] = [*serving, stopping]
        for task in running:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    _forget_signals(loop)


class NetworkErrorsInOneLine(logging.Filter):
    """PTB's updater logs a traceback when its last getUpdates at shutdown cannot reach
    Telegram; a network failure is one warning line with its reason instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, NetworkError):
            record.msg = f"{record.getMessage().split('. ')[0]} ({exc})"
            record.args = None
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_UPDATER_LOG = logging.getLogger("telegram.ext.Updater")


def _one_line_updater_errors() -> None:
    if not any(isinstance(f, NetworkErrorsInOneLine) for f in _UPDATER_LOG.filters):
        _UPDATER_LOG.addFilter(NetworkErrorsInOneLine())


def _forget_signals(loop: asyncio.AbstractEventLoop) -> None:
    for sig in STOP_SIGNALS:
        loop.remove_signal_handler(sig)


def _backoff() -> Iterator[float]:
    yield from CONNECT_BACKOFF_S
    while True:
        yield CONNECT_BACKOFF_S[-1]


async def reach_telegram(
    application: BotApplication, settings: Settings, stop: asyncio.Event
) -> bool:
    """Initialize the application (its getMe) once Telegram answers: True; False on a stop first.

    InvalidToken is not caught: a rejected token ends the start.
    """
    host = urlsplit(settings.telegram_api_base_url or "https://api.telegram.org").netloc
    delays = _backoff()
    while True:
        try:
            await application.initialize()
            return True
        except (NetworkError, RetryAfter) as exc:
            delay = next(delays)
            if isinstance(exc, RetryAfter):
                wait = exc.retry_after
                delay = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
            log.warning(
                "cannot reach Telegram at %s (%s); trying again in %.0f s", host, exc, delay
            )
        try:
            async with asyncio.timeout(delay):
                await stop.wait()
        except TimeoutError:
            continue
        await application.bot.shutdown()
        return False


def polling_of(application: BotApplication) -> Polling:
    """Polling for this process: under the replicas' poller lease when there are replicas."""
    assert application.updater is not None
    found = services_of(application)
    replicas = found.replicas if found is not None else None
    return Polling(application.updater, replicas.poller if replicas is not None else None)


def web_servers(
    application: BotApplication, settings: Settings, secret: str | None
) -> list[uvicorn.Server]:
    """The webhook server (webhook mode) and the /healthz + /metrics server (HFBOT_METRICS_PORT).

    With a metrics port, /metrics is served there only, on HFBOT_METRICS_LISTEN
    (loopback by default), never on the public webhook port.
    """
    own_port = settings.metrics_port is not None
    servers = []
    if secret is not None:
        app = build_web_app(application, settings, secret, metrics=not own_port)
        servers.append(uvicorn_server(app, settings.webhook_listen, settings.webhook_port))
    if settings.metrics_port is not None:
        app = build_web_app(application, settings, None)
        servers.append(uvicorn_server(app, settings.metrics_listen, settings.metrics_port))
    return servers


async def _listening(server: uvicorn.Server, serving: asyncio.Task[None]) -> None:
    """Wait until uvicorn accepts connections (it offers a flag, not an event)."""
    while not server.started:
        if serving.done():
            serving.result()
            raise RuntimeError("the web server stopped before it started listening")
        await asyncio.sleep(0.01)


async def drain(application: BotApplication, grace_s: float) -> None:
    """Let handlers finish; past the deadline, close the pool so each waiter is answered."""
    processor = application.update_processor
    if not isinstance(processor, ChatOrderedUpdateProcessor):
        return
    try:
        await asyncio.wait_for(processor.wait_idle(), grace_s)
        return
    except TimeoutError:
        log.warning(
            "%d requests still running after %.0f s; telling their users",
            processor.in_flight,
            grace_s,
        )
    found = services_of(application)
    if found is not None:
        await found.pool.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(processor.wait_idle(), 10)
