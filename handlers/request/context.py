"""The typed PTB context every handler receives, and the services it carries.

As in python-telegram-bot's `contexttypesbot.py` example, the application is
built with `ContextTypes(context=BotContext, bot_data=BotData)`: handlers read
`context.services` (typed) and never import the module that builds the
application, so the wiring can import the handlers without a circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram.ext import Application, CallbackContext, ContextTypes, ExtBot, JobQueue

from bot.admission.access_policy import AccessPolicy
from bot.admission.conversation_turns import ConversationTurns
from bot.admission.in_flight import RunningRequests
from bot.admission.rate_limit import RateLimiter
from bot.config import Settings
from bot.delivery.chat_action import ChatTyping
from bot.delivery.draft_stop import DraftSupport
from bot.delivery.outbound import Priority
from bot.delivery.pacing import EditPacer
from bot.delivery.shared_answers import SharedAnswers
from bot.engine import PipelinePool
from bot.hub import ModelDownloads, ModelVetter
from bot.monitoring.bot_metrics import BotMetrics
from bot.replicas.replica_set import ReplicaSet
from models.store import Store


@dataclass
class Services:
    """Everything a handler needs besides the update itself."""

    settings: Settings
    store: Store
    pool: PipelinePool
    vetter: ModelVetter
    limiter: RateLimiter
    running: RunningRequests
    typing: ChatTyping
    edit_pacer: EditPacer
    shared_answers: SharedAnswers
    downloads: ModelDownloads
    metrics: BotMetrics
    access: AccessPolicy
    # Conversations whose turn is being answered: the next message of one waits for it.
    conversation_turns: ConversationTurns
    # Whether the Bot API server takes stoppable drafts, and whose each live draft is.
    drafts: DraftSupport
    # This process as one of several replicas sharing Redis; None when it runs alone.
    replicas: ReplicaSet | None = None

    async def close(self) -> None:
        """Pool first (it answers every waiter), then the database the answers are logged to."""
        await self.pool.close()
        self.downloads.close()
        if self.replicas is not None:
            await self.replicas.close()
        await self.store.close()


class BotData:
    """The application's `bot_data`: the services, from post_init until post_shutdown."""

    def __init__(self) -> None:
        self.services: Services | None = None


class BotContext(CallbackContext[ExtBot[Priority], dict[Any, Any], dict[Any, Any], BotData]):
    """The context of every hfbot handler."""

    @property
    def services(self) -> Services:
        found = self.bot_data.services
        if found is None:
            raise RuntimeError("handlers run only between post_init and post_shutdown")
        return found


CONTEXT_TYPES = ContextTypes(context=BotContext, bot_data=BotData)

BotApplication = Application[
    ExtBot[Priority], BotContext, dict[Any, Any], dict[Any, Any], BotData, JobQueue[BotContext]
]


def services_of(application: BotApplication) -> Services | None:
    """The services, or None before post_init has run (for health checks)."""
    return application.bot_data.services
