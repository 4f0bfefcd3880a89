"""This process as one replica of several: the link to Redis and what is shared through it."""

from __future__ import annotations

from bot.admission.rate_limit import UserRateLimiter
from bot.config import Settings
from bot.delivery.outbound import Budget
from bot.replicas.broadcast import Broadcast
from bot.replicas.chat_order import SharedChatOrder
from bot.replicas.poll_leader import PollLeader
from bot.replicas.redis_link import RedisLink
from bot.replicas.shared_budget import SharedTelegramBudget
from bot.replicas.shared_limits import SharedRateLimiter, SharedRunningRequests
from bot.replicas.shared_lines import SharedLines
from bot.replicas.shared_quota import SharedQuotaHolds
from models.database import Database
from models.usage import LocalHolds


class ReplicaSet:
    """The limits every replica counts together (each person's, and Telegram's budget), the
    lines they wait in together (each chat's replies, each conversation's turns), the
    settings cache they clear together, and which of them polls Telegram."""

    def __init__(
        self, url: str, settings: Settings, database: Database, *, budget: Budget | None = None
    ) -> None:
        self.link = RedisLink(url)
        # Several bots may share one Redis: each one's keys start with its own id.
        token = settings.telegram_bot_token
        bot_id = token.get_secret_value().split(":", 1)[0] if token is not None else "bot"
        namespace = f"hfbot:{bot_id}"
        per_minute = settings.rate_limit_per_minute
        self.limiter = SharedRateLimiter(
            self.link, per_minute, UserRateLimiter(per_minute), namespace=namespace
        )
        self.running = SharedRunningRequests(self.link, namespace=namespace)
        self.quota_holds = SharedQuotaHolds(
            self.link, LocalHolds(database.clock), namespace=namespace
        )
        self.broadcast = Broadcast(self.link, database, namespace=namespace)
        self.running.stop_elsewhere(self.broadcast)
        self.budget = SharedTelegramBudget(self.link, budget, namespace=namespace)
        # No line is waited in longer than a request may take, and a lease.
        longest_wait_s = settings.pool_request_timeout_s + settings.inbox_lease_s
        self.order = SharedChatOrder(
            self.link,
            namespace=namespace,
            lease_s=settings.inbox_lease_s,
            longest_wait_s=longest_wait_s,
        )
        self.conversations = SharedLines(
            self.link,
            f"{namespace}:conversation",
            lease_s=settings.inbox_lease_s,
            longest_wait_s=longest_wait_s,
        )
        self.poller = PollLeader(self.link, namespace=namespace)

    async def start(self) -> None:
        await self.broadcast.start()

    async def keep_leases(self) -> None:
        """Renew what this replica holds (every third of `inbox_lease_s`)."""
        await self.order.renew()
        await self.conversations.renew()

    @property
    def health(self) -> str:
        """For /healthz: a replica whose Redis is down still answers (on its own limits), so
        this part is reported but never fails the check a load balancer reads."""
        return "ok" if self.link.up else "unreachable"

    async def close(self) -> None:
        await self.broadcast.close()
        await self.link.close()
