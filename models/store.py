"""The store: one database and a store per aggregate, the only code that reads or writes it.

It knows nothing of Telegram or transformers. Each aggregate's store keeps its
queries beside its rows; `models.database` holds what they share (sessions,
the read cache, `StoreUnavailable`, and `or_default`, the one fallback policy
for reads on the request path).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from models.access import AccessBook
from models.conversation import Conversations
from models.database import Database
from models.inbox import Inbox
from models.preference import Preferences, Rules
from models.rule import ModelRules
from models.usage import UsageLog


class Store:
    """Every aggregate's store on one database."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        rules: Rules,
        cache_ttl_s: float = 30.0,
        touch_interval_s: float = 60.0,
        max_cached_owners: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = Database(
            engine, cache_ttl_s=cache_ttl_s, max_cached_owners=max_cached_owners, clock=clock
        )
        self.preferences = Preferences(self.database, rules, touch_interval_s=touch_interval_s)
        self.conversations = Conversations(self.database)
        self.usage = UsageLog(self.database)
        self.access = AccessBook(self.database)
        self.inbox = Inbox(self.database)
        self.rules = ModelRules(self.database)

    @property
    def engine(self) -> AsyncEngine:
        return self.database.engine

    async def close(self) -> None:
        await self.database.close()
