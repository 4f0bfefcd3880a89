"""Wiring: the PTB Application, every handler registered, and the services they share.

Shared objects (settings, store, pool, vetter, …) are created in `post_init`
and closed in `post_shutdown`; handlers reach them as `context.services`
through the typed context of `handlers.request.context`, never by importing this module.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, cast

from sqlalchemy.exc import DBAPIError
from telegram.ext import ApplicationBuilder

from bot.admission.access_policy import AccessPolicy
from bot.admission.conversation_turns import ConversationTurns
from bot.admission.in_flight import RunningRequests
from bot.admission.rate_limit import UserRateLimiter
from bot.app.request import CountingRequest
from bot.app.update_inbox import InboxUpdateProcessor, RecordingUpdateQueue, UpdateInbox
from bot.config import Settings
from bot.delivery.chat_action import ChatTyping
from bot.delivery.draft_stop import DraftSupport
from bot.delivery.outbound import PriorityRateLimiter
from bot.delivery.pacing import EditPacer
from bot.delivery.shared_answers import SharedAnswers
from bot.engine.pool import PipelinePool
from bot.errors import StoreUnavailable
from bot.hub.downloads import ModelDownloads
from bot.hub.vetting import ModelVetter
from bot.monitoring.bot_metrics import BotMetrics
from bot.replicas.replica_set import ReplicaSet
from bot.tasks import ParamRules, param_rules_from_caps
from handlers import register_handlers
from handlers.commands.basics import register_commands
from handlers.commands.conversations import prune_history
from handlers.request.access_gate import passes_gate
from handlers.request.context import CONTEXT_TYPES, BotApplication, BotContext, Services
from models import migrate
from models.database import create_engine
from models.opening import failure_reason, location, sqlite_problem
from models.store import Store

log = logging.getLogger(__name__)

# How often done rows leave the inbox; between two prunes they cost a few bytes each.
INBOX_PRUNE_S = 60.0


async def start_services(settings: Settings, metrics: BotMetrics) -> Services:
    """Open the store (upgraded first), the pool and the vetter the handlers will share."""
    store = await open_store(settings)
    pool = PipelinePool(settings)
    metrics.watch_pool(lambda: pool.metrics.snapshot())
    vetter = ModelVetter(settings, store.rules, remote=pool.remote)
    access = AccessPolicy(settings, store.access)
    await access.warm()
    replicas = None
    conversation_turns = ConversationTurns()
    if settings.redis_url is not None:
        replicas = ReplicaSet(settings.redis_url.get_secret_value(), settings, store.database)
        await replicas.start()
        conversation_turns.share(replicas.conversations)
        store.usage.share_holds(replicas.quota_holds)
    return Services(
        settings=settings,
        store=store,
        pool=pool,
        vetter=vetter,
        limiter=(
            replicas.limiter if replicas else UserRateLimiter(settings.rate_limit_per_minute)
        ),
        running=replicas.running if replicas else RunningRequests(),
        conversation_turns=conversation_turns,
        drafts=DraftSupport(),
        typing=ChatTyping(),
        edit_pacer=EditPacer(),
        shared_answers=SharedAnswers(),
        downloads=ModelDownloads(
            vetter.access,
            workers=settings.download_workers,
            disk_budget_bytes=(
                settings.model_disk_budget_mb * 2**20 if settings.model_disk_budget_mb else None
            ),
            in_use=pool.model_ids,
        ),
        metrics=metrics,
        access=access,
        replicas=replicas,
    )


def api_urls(base: str | None) -> tuple[str, str]:
    """Bot API and file URLs for a server root such as http://127.0.0.1:8081 (or …/bot)."""
    root = (base or "https://api.telegram.org").rstrip("/").removesuffix("/bot")
    return f"{root}/bot", f"{root}/file/bot"


def rules_for(settings: Settings) -> ParamRules:
    return param_rules_from_caps(settings.max_new_tokens_cap, settings.max_return_sequences_cap)


async def open_store(settings: Settings) -> Store:
    """The store on the configured database, upgraded to head first when auto_migrate is on.

    A SQLite file that cannot be opened or written fails at once, saying why. A
    database server still starting (or restarting) is waited for, with backoff, up
    to `database_start_wait_s`: a bot and its database started together must not
    depend on which is up first. Past that, StoreUnavailable ends the start, its
    reason in the driver's words.
    """
    problem = await asyncio.to_thread(
        sqlite_problem, settings.database_url, settings.database_timeout_s
    )
    if problem is not None:
        raise StoreUnavailable(reason=problem)
    engine = create_engine(settings.database_url, timeout_s=settings.database_timeout_s)
    store = Store(
        engine, rules=rules_for(settings), cache_ttl_s=settings.settings_cache_ttl_s
    )
    deadline = time.monotonic() + settings.database_start_wait_s
    delay = 0.5
    while True:
        try:
            await store.database.ping()
            break
        except StoreUnavailable as exc:
            reason = failure_reason(exc.__cause__ or exc)
            if time.monotonic() + delay > deadline:
                await store.close()
                raise StoreUnavailable(reason=reason) from exc
            log.warning(
                "database at %s unreachable (%s); trying again in %.1f s",
                location(settings.database_url),
                reason,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    if settings.auto_migrate:
        try:
            await migrate.upgrade(engine)
        except (DBAPIError, OSError) as exc:
            await store.close()
            raise StoreUnavailable(reason=failure_reason(exc)) from exc
    return store


def build_application(
    settings: Settings,
    builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] | None = None,
    *,
    webhook: bool = False,
) -> BotApplication:
    """The bot, every handler registered, services created on start and closed on stop.

    `builder` lets the console and the tests wire the same bot to a local Bot
    API emulator; `webhook` leaves out the polling updater.
    """
    metrics = BotMetrics()
    # Replicas each claim what they handle, so another can take over if one dies.
    replica = uuid.uuid4().hex if settings.redis_url is not None else None
    inbox = UpdateInbox(
        settings.inbox_replay_window_s, replica=replica, lease_s=settings.inbox_lease_s
    )

    async def prune_inbox(_: object) -> None:
        await inbox.prune()

    async def keep_leases(context: BotContext) -> None:
        if context.services.replicas is not None:
            await context.services.replicas.keep_leases()
        await inbox.keep_claims(context.application.update_queue, context.bot)

    outbound = PriorityRateLimiter()
    processor = InboxUpdateProcessor(inbox)

    async def post_init(application: BotApplication) -> None:
        services = await start_services(settings, metrics)
        application.bot_data.services = services
        if services.replicas is not None:
            outbound.share(services.replicas.budget)
            processor.share(services.replicas.order)
            inbox.share_order(services.replicas.order)
        inbox.attach(
            services.store,
            application.bot.id,
            lambda update: passes_gate(update, services.access),
        )
        await inbox.replay(application.update_queue, application.bot)
        await register_commands(application)
        if application.job_queue is not None:
            application.job_queue.run_repeating(prune_history, interval=3600, first=60)
            application.job_queue.run_repeating(prune_inbox, interval=INBOX_PRUNE_S, first=30)
            if replica is not None:
                interval = inbox.lease.total_seconds() / 3
                application.job_queue.run_repeating(
                    keep_leases, interval=interval, first=interval
                )
        log.info("hfbot started as @%s", application.bot.username)

    async def post_shutdown(application: BotApplication) -> None:
        await inbox.close()
        found, application.bot_data.services = application.bot_data.services, None
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
    application = cast(
        BotApplication,
        builder.context_types(CONTEXT_TYPES)
        .request(CountingRequest(metrics, connection_pool_size=64))
        .rate_limiter(outbound)
        .update_queue(RecordingUpdateQueue(inbox))
        .concurrent_updates(processor)
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build(),
    )
    register_handlers(application)
    return application
