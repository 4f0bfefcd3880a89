"""A TCP relay in front of the test PostgreSQL that can go down and come back.

The bot connects to the relay's port. `down()` cuts every open connection and
turns new ones away at once (a database restarting, a network cut); `up()`
relays again. `attempts` counts connections tried, so a test can await the
bot's retries instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit


class FlakyDatabase:
    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url.replace("postgresql+asyncpg", "postgresql", 1))
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._database = parts.path.lstrip("/")
        self._user = parts.username or "postgres"
        self.is_up = True
        self.attempts = 0
        self._links: set[asyncio.StreamWriter] = set()
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{self._user}@127.0.0.1:{self.port}/{self._database}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.down()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def down(self) -> None:
        self.is_up = False
        for writer in list(self._links):
            writer.close()
        self._links.clear()

    def up(self) -> None:
        self.is_up = True

    async def wait_for_attempts(self, count: int, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.attempts >= count)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with self._changed:
            self.attempts += 1
            self._changed.notify_all()
        if not self.is_up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._links.update((writer, up_writer))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        self._links.difference_update((writer, up_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def flaky_database(target_url: str) -> AsyncIterator[FlakyDatabase]:
    relay = FlakyDatabase(target_url)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.close()
