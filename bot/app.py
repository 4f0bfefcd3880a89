"""Wiring: the PTB Application and the services its handlers share.

Shared objects (settings, store, pool, vetter, …) are created in `post_init`
and closed in `post_shutdown`; handlers reach them through `services(context)`
rather than by indexing `bot_data` with strings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes

from bot import db
from bot.chat_typing import ChatTyping
from bot.config import Settings
from bot.edit_pacer import EditPacer
from bot.hub import ModelVetter
from bot.metrics import BotMetrics
from bot.model_fetch import ModelDownloads
from bot.pool import PipelinePool
from bot.ratelimit import UserRateLimiter
from bot.running import RunningRequests
from bot.tasks import ParamRules, param_rules_from_caps
from bot.telegram_request import CountingRequest
from bot.update_order import ChatOrderedUpdateProcessor
from models.store import SettingsStore, create_engine

log = logging.getLogger(__name__)

_SERVICES = "hfbot.services"


@dataclass
class Services:
    """Everything a handler needs besides the update itself."""

    settings: Settings
    store: SettingsStore
    pool: PipelinePool
    vetter: ModelVetter
    limiter: UserRateLimiter
    running: RunningRequests
    typing: ChatTyping
    edit_pacer: EditPacer
    downloads: ModelDownloads
    metrics: BotMetrics

    @classmethod
    async def start(cls, settings: Settings, metrics: BotMetrics) -> Services:
        store = await open_store(settings)
        pool = PipelinePool(settings)
        metrics.watch_pool(lambda: pool.metrics.snapshot())
        vetter = ModelVetter(settings, store)
        return cls(
            settings=settings,
            store=store,
            pool=pool,
            vetter=vetter,
            limiter=UserRateLimiter(settings.rate_limit_per_minute),
            running=RunningRequests(),
            typing=ChatTyping(),
            edit_pacer=EditPacer(),
            downloads=ModelDownloads(vetter.access),
            metrics=metrics,
        )

    async def close(self) -> None:
        """Pool first (it answers every waiter), then the database the answers are logged to."""
        await self.pool.close()
        await self.store.close()


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    """The running bot's services; handlers never index bot_data themselves."""
    return context.application.bot_data[_SERVICES]


def services_of(application: Application) -> Services | None:
    """The services, or None before post_init has run (for health checks)."""
    return application.bot_data.get(_SERVICES)


def api_urls(base: str | None) -> tuple[str, str]:
    """Bot API and file URLs for a server root such as http://127.0.0.1:8081 (or …/bot)."""
    root = (base or "https://api.telegram.org").rstrip("/").removesuffix("/bot")
    return f"{root}/bot", f"{root}/file/bot"


def rules_for(settings: Settings) -> ParamRules:
    return param_rules_from_caps(settings.max_new_tokens_cap, settings.max_return_sequences_cap)


async def open_store(settings: Settings) -> SettingsStore:
    """The store on the configured database, upgraded to head first when auto_migrate is on."""
    engine = create_engine(settings.database_url)
    if settings.auto_migrate:
        await db.upgrade(engine)
    return SettingsStore(
        engine, rules=rules_for(settings), cache_ttl_s=settings.settings_cache_ttl_s
    )


def build_application(
    settings: Settings, builder: ApplicationBuilder | None = None, *, webhook: bool = False
) -> Application:
    """The bot, every handler registered, services created on start and closed on stop.

    `builder` lets the console and the tests wire the same bot to a local Bot
    API emulator; `webhook` leaves out the polling updater.
    """
    from handlers import register_handlers
    from handlers.common import register_commands

    metrics = BotMetrics()

    async def post_init(application: Application) -> None:
        application.bot_data[_SERVICES] = await Services.start(settings, metrics)
        await register_commands(application)
        log.info("hfbot started as @%s", application.bot.username)

    async def post_shutdown(application: Application) -> None:
        found = application.bot_data.pop(_SERVICES, None)
        if found is not None:
            await found.close()

    if builder is None:
        base_url, file_url = api_urls(settings.telegram_api_base_url)
        builder = (
            ApplicationBuilder()
            .token(settings.require_token())
            .base_url(base_url)
            .base_file_url(file_url)
        )
    if webhook:
        builder = builder.updater(None)
    else:
        builder = builder.get_updates_request(CountingRequest(metrics, read_timeout=30))
    application = (
        builder.request(CountingRequest(metrics, connection_pool_size=64))
        .rate_limiter(AIORateLimiter(max_retries=2))
        .concurrent_updates(ChatOrderedUpdateProcessor())
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    register_handlers(application)
    return application
