"""The replicas' one connection to Redis, and whether Redis answers now.

Every shared limit goes through `RedisLink.run`: the call, or None while Redis is
down, so the caller uses its own process's limit instead. A failure is logged once as
a WARNING (not once per request in a busy bot), and Redis is tried again after
`retry_s`; the first answer after that says, also once, that limits are shared again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

T = TypeVar("T")

# What "Redis cannot be reached" looks like from redis-py (and the sockets under it).
UNREACHABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)


def redis_location(url: str) -> str:
    """host:port of a Redis URL, never its password (for logs and /healthz)."""
    parts = urlsplit(url)
    return parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"


class RedisLink:
    """A Redis client that knows whether Redis answered its last call."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.5,
        retry_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.where = redis_location(url)
        self.timeout_s = timeout_s
        self.client: Redis = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
        )
        self._retry_s = retry_s
        self._clock = clock
        self._down_since: float | None = None

    @property
    def up(self) -> bool:
        """Whether Redis answered the last call made to it."""
        return self._down_since is None

    def worth_trying(self) -> bool:
        """Up, or down for long enough that it is worth another try."""
        return self._down_since is None or self._clock() - self._down_since >= self._retry_s

    def failed(self, error: BaseException) -> None:
        """Redis did not answer: this process's own limits stand in until it does."""
        if self._down_since is None:
            log.warning(
                "Redis at %s cannot be reached (%s): each replica uses its own limits "
                "until it is back",
                self.where,
                type(error).__name__,
            )
        self._down_since = self._clock()

    def answered(self) -> None:
        if self._down_since is not None:
            log.warning("Redis at %s answers again: limits are shared again", self.where)
        self._down_since = None

    async def run(self, call: Callable[[Redis], Awaitable[T]]) -> T | None:
        """`call`'s answer, or None while Redis cannot be reached (then not tried for a while)."""
        if not self.worth_trying():
            return None
        try:
            answer = await call(self.client)
        except UNREACHABLE as error:
            self.failed(error)
            return None
        self.answered()
        return answer

    def listener(self) -> Redis:
        """A client of its own for a subscription: it waits for messages as long as it takes,
        so it has no read timeout (the shared client's would end an idle subscription)."""
        return Redis.from_url(
            self.url, socket_connect_timeout=self.timeout_s, decode_responses=True
        )

    async def close(self) -> None:
        await self.client.aclose()
