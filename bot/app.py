"""Wiring: the PTB Application, its shared services, and how the bot starts and stops.

Shared objects (settings, store, pool) are created in `post_init` and closed in
`post_shutdown`, and handlers reach them through `services(context)` rather
than by indexing `bot_data` with strings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes

from bot import db
from bot.config import Settings
from bot.tasks import ParamRules, param_rules_from_caps
from models.store import SettingsStore, create_engine

log = logging.getLogger(__name__)

_SERVICES = "hfbot.services"


@dataclass
class Services:
    """Everything a handler needs besides the update itself."""

    settings: Settings
    rules: ParamRules
    store: SettingsStore


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    """The running bot's services; handlers never index bot_data themselves."""
    return context.application.bot_data[_SERVICES]


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


def build_application(settings: Settings) -> Application:
    """The bot, every handler registered, services created on start and closed on stop."""
    from handlers import register_handlers

    base_url, file_url = api_urls(settings.telegram_api_base_url)

    async def post_init(application: Application) -> None:
        application.bot_data[_SERVICES] = Services(
            settings=settings, rules=rules_for(settings), store=await open_store(settings)
        )
        log.info("hfbot started as @%s", application.bot.username)

    async def post_shutdown(application: Application) -> None:
        found = application.bot_data.pop(_SERVICES, None)
        if found is not None:
            await found.store.close()

    application = (
        ApplicationBuilder()
        .token(settings.require_token())
        .base_url(base_url)
        .base_file_url(file_url)
        .rate_limiter(AIORateLimiter(max_retries=2))
        .concurrent_updates(True)
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    register_handlers(application)
    return application


def run_polling(settings: Settings) -> None:
    """Run until interrupted, with long polling."""
    build_application(settings).run_polling(allowed_updates=None)
