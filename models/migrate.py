"""Schema migrations run in-process: `hfbot db upgrade|downgrade|current` and start-up upgrades.

Alembic's commands are synchronous; they run here on a connection borrowed
from our async engine (Alembic's connection-sharing recipe), so the same
code path works inside the bot's event loop and from the command line.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations

MIGRATIONS_DIR = Path(str(resources.files(migrations)))
# PostgreSQL advisory lock key that serialises schema upgrades ("hfbot" in ASCII).
MIGRATION_LOCK = 0x686662_6F74


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


async def _run(engine: AsyncEngine, action: str, revision: str) -> None:
    """Run one Alembic command; on SQLite with foreign keys off while it runs.

    SQLite alters most columns by copying a table and dropping the original;
    with foreign keys on, that drop would cascade and delete every row that
    points at the table (users' saved choices). The pragma only takes effect
    outside a transaction, so it is set before Alembic begins one, and the
    references are checked before they are switched back on.
    """

    def run(connection: Connection) -> None:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            _raw_sqlite(connection, "PRAGMA foreign_keys=OFF")
        elif connection.dialect.name == "postgresql":
            # Replicas started together upgrade one at a time; the others then find the
            # schema at head (held until this transaction ends).
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        config = alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)
        if sqlite:
            broken = _raw_sqlite(connection, "PRAGMA foreign_key_check")
            _raw_sqlite(connection, "PRAGMA foreign_keys=ON")
            if broken:
                raise RuntimeError(f"migration left broken references: {broken}")

    async with engine.connect() as connection:
        await connection.run_sync(run)
        await connection.commit()


def _raw_sqlite(connection: Connection, pragma: str) -> list[tuple[object, ...]]:
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(pragma)
        return list(cursor.fetchall())
    finally:
        cursor.close()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    await _run(engine, "downgrade", revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
