"""Alembic environment: async engines, and connection sharing for in-process upgrades.

`models.migrate` runs migrations on a connection it already holds (passed in
`config.attributes["connection"]`), so `hfbot run` can upgrade inside its own
event loop. The `alembic` command line goes through `run_async_migrations`, on
the database the bot's settings name (DATABASE_URL, or .env) unless the
configuration names one.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from bot.config import Settings
from models.base import Base
from models.database import create_engine
from models.store import Store  # noqa: F401  (importing the store registers every table)

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings().database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif (shared := config.attributes.get("connection")) is not None:
    _configure(shared)
else:
    asyncio.run(run_async_migrations())
