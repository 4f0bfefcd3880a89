"""Alembic owns the schema: up to head, down to base, data kept, models in step."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from bot.tasks import param_rules_from_caps
from models import migrate
from models.base import Base, utcnow
from models.conversation import NewTurn
from models.store import Store

APP_TABLES = set(Base.metadata.tables)


async def table_names(engine) -> set[str]:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    return names - {"alembic_version"}


async def test_replicas_starting_together_upgrade_one_at_a_time(database) -> None:
    """Three processes upgrading one fresh database at once: one upgrades, two find head."""
    if database.url.startswith("sqlite"):
        pytest.skip("replicas share a PostgreSQL database; a SQLite file belongs to one process")
    engines = [database.engine() for _ in range(3)]
    try:
        await asyncio.gather(*(migrate.upgrade(engine) for engine in engines))
        assert await table_names(engines[0]) == APP_TABLES
        assert await migrate.current_revision(engines[0]) == migrate.head_revision()
    finally:
        for engine in engines:
            await engine.dispose()


async def test_upgrade_to_head_and_downgrade_to_base(database) -> None:
    engine = database.engine()
    try:
        await migrate.upgrade(engine)
        assert await table_names(engine) == APP_TABLES
        assert await migrate.current_revision(engine) == migrate.head_revision()
        await migrate.downgrade(engine, "base")
        assert await table_names(engine) == set()
        assert await migrate.current_revision(engine) is None
        await migrate.upgrade(engine)
        assert await table_names(engine) == APP_TABLES
    finally:
        await engine.dispose()


async def test_saved_choices_survive_an_upgrade_and_a_downgrade(database) -> None:
    engine = database.engine()
    try:
        await migrate.upgrade(engine, "0001")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO users (id, telegram_language, first_seen, last_seen) "
                    "VALUES (42, 'zh', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            await connection.execute(
                text(
                    "INSERT INTO user_preferences (user_id, task, model_id, params, updated_at) "
                    "VALUES (42, 'generate', 'org/gpt', :params, CURRENT_TIMESTAMP)"
                ),
                {"params": '{"temperature": 0.3}'},
            )
        await migrate.upgrade(engine)
        store = Store(engine, rules=param_rules_from_caps(256, 3))
        choice = await store.preferences.user_choice(42, "generate")
        assert choice.model_id == "org/gpt"
        assert choice.params == {"temperature": 0.3}
        assert await store.preferences.get_options(42) == {}
        assert await store.preferences.get_language(42) == "zh"

        await migrate.downgrade(engine, "0001")
        fresh_store = Store(engine, rules=param_rules_from_caps(256, 3))
        assert (await fresh_store.preferences.user_choice(42, "generate")).model_id == "org/gpt"
    finally:
        await engine.dispose()


async def test_the_models_match_what_the_migrations_build(database) -> None:
    engine = database.engine()
    try:
        await migrate.upgrade(engine)
        async with engine.connect() as connection:
            diff = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
        assert diff == []
    finally:
        await engine.dispose()


async def test_access_tables_come_with_0004_and_go_with_its_downgrade(database) -> None:
    engine = database.engine()
    try:
        await migrate.upgrade(engine)
        store = Store(engine, rules=param_rules_from_caps(256, 3))
        await store.access.decide(42, True, by=1)
        await store.access.create_invite("code", 1, None, by=1)
        await migrate.downgrade(engine, "0003")
        assert await table_names(engine) == APP_TABLES - {"access_grants", "invite_codes", "inbox"}
        await migrate.upgrade(engine)
        fresh_store = Store(engine, rules=param_rules_from_caps(256, 3))
        assert await fresh_store.access.restricted() is False, "the downgrade dropped the grants"
    finally:
        await engine.dispose()


async def test_conversations_come_with_0003_and_go_with_its_downgrade_keeping_choices(
    database,
) -> None:
    engine = database.engine()
    try:
        await migrate.upgrade(engine)
        store = Store(engine, rules=param_rules_from_caps(256, 3))
        await store.preferences.set_user_params(7, "generate", {"temperature": 0.3})
        await store.preferences.set_system_prompt(7, "Be brief.")
        ongoing = await store.conversations.ongoing(7, 7)
        await store.conversations.add_turn(
            ongoing.id,
            NewTurn(
                question="hi",
                question_message_id=1,
                answer="hello",
                answer_message_id=2,
                author_id=7,
            ),
        )
        await migrate.downgrade(engine, "0002")
        assert "conversations" not in await table_names(engine)
        await migrate.upgrade(engine)
        fresh_store = Store(engine, rules=param_rules_from_caps(256, 3))
        choice = await fresh_store.preferences.user_choice(7, "generate")
        assert choice is not None and choice.params == {"temperature": 0.3}
        assert (await fresh_store.conversations.ongoing(7, 7)).turns == ()
        assert await fresh_store.preferences.system_prompt(7) is None
    finally:
        await engine.dispose()


async def test_the_inbox_comes_with_0005_and_goes_with_its_downgrade(database) -> None:
    engine = database.engine()
    try:
        await migrate.upgrade(engine)
        store = Store(engine, rules=param_rules_from_caps(256, 3))
        await store.preferences.set_user_params(7, "generate", {"temperature": 0.3})
        await store.inbox.accept(1, 10, 7, {"update_id": 10})
        await migrate.downgrade(engine, "0004")
        assert await table_names(engine) == APP_TABLES - {"inbox"}
        await migrate.upgrade(engine)
        fresh_store = Store(engine, rules=param_rules_from_caps(256, 3))
        assert (await fresh_store.preferences.user_choice(7, "generate")).params == {"temperature": 0.3}
        assert await fresh_store.inbox.accept(1, 10, 7, {"update_id": 10}), "the old row went"
    finally:
        await engine.dispose()


async def test_0008_charges_the_answered_requests_logged_before_it(database) -> None:
    engine = database.engine()
    try:
        await migrate.upgrade(engine, "0007")
        async with engine.begin() as connection:
            for ok in (True, False):
                await connection.execute(
                    text(
                        "INSERT INTO usage_log (created_at, user_id, chat_id, task, model_id, "
                        "latency_ms, ok) VALUES (CURRENT_TIMESTAMP, 42, 42, 'sentiment', 'm', "
                        "1.0, :ok)"
                    ),
                    {"ok": ok},
                )
        await migrate.upgrade(engine)
        store = Store(engine, rules=param_rules_from_caps(256, 3))
        assert await store.usage.answered_since(42, utcnow() - timedelta(hours=1)) == 1
    finally:
        await engine.dispose()
