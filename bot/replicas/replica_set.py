"""This process as one replica of several: the link to Redis and what is shared through it."""

from __future__ import annotations

from bot.admission.rate_limit import UserRateLimiter
from bot.config import Settings
from bot.replicas.redis_link import RedisLink
from bot.replicas.settings_broadcast import SettingsBroadcast
from bot.replicas.shared_limits import SharedRateLimiter, SharedRunningRequests
from models.database import Database


class ReplicaSet:
    """The limits every replica counts together, and the settings cache they clear together."""

    def __init__(self, url: str, settings: Settings, database: Database) -> None:
        self.link = RedisLink(url)
        per_minute = settings.rate_limit_per_minute
        self.limiter = SharedRateLimiter(self.link, per_minute, UserRateLimiter(per_minute))
        self.running = SharedRunningRequests(self.link)
        self.broadcast = SettingsBroadcast(self.link, database)

    async def start(self) -> None:
        await self.broadcast.start()

    @property
    def health(self) -> str:
        """For /healthz: a replica whose Redis is down still answers (on its own limits), so
        this part is reported but never fails the check a load balancer reads."""
        return "ok" if self.link.up else "unreachable"

    async def close(self) -> None:
        await self.broadcast.close()
        await self.link.close()
