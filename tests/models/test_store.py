"""Store behaviour on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import InvalidParamValue, StoreUnavailable, UnknownParam, UnknownTask
from bot.tasks import TASKS, param_rules_from_caps
from models import migrate
from models.base import utcnow
from models.database import create_engine
from models.store import Store
from models.usage import UsageRecord

GENERATE = TASKS["generate"]
BOT_MODEL = GENERATE.default_model
BOT_PARAMS = GENERATE.default_params()


async def resolve(store: Store, user: int, chat: int | None = None):
    return await store.preferences.resolve(
        user, chat, "generate", default_model=BOT_MODEL, default_params=BOT_PARAMS
    )


async def test_a_new_user_gets_the_bot_defaults(store: Store) -> None:
    resolved = await resolve(store, 1)
    assert resolved.model_id == BOT_MODEL
    assert resolved.model_source == "bot"
    assert resolved.params == BOT_PARAMS
    assert set(resolved.param_sources.values()) == {"bot"}


async def test_a_users_model_and_params_round_trip(store: Store) -> None:
    await store.preferences.set_user_model(7, "generate", "org/my-gpt")
    stored = await store.preferences.set_user_params(
        7, "generate", {"temperature": "0.3", "max_new_tokens": 64}
    )
    assert stored == {"temperature": 0.3, "max_new_tokens": 64}
    resolved = await resolve(store, 7)
    assert resolved.model_id == "org/my-gpt"
    assert resolved.params["temperature"] == 0.3
    assert resolved.params["max_new_tokens"] == 64
    assert resolved.params["top_k"] == BOT_PARAMS["top_k"]
    assert resolved.param_sources["temperature"] == "user"
    assert resolved.param_sources["top_k"] == "bot"


async def test_choices_survive_a_new_store_on_the_same_database(
    store: Store, database
) -> None:
    await store.preferences.set_user_params(7, "generate", {"top_p": 0.5})
    fresh = Store(database.engine(), rules=param_rules_from_caps(256, 3))
    try:
        assert (await resolve(fresh, 7)).params["top_p"] == 0.5
    finally:
        await fresh.close()


async def test_user_choice_beats_chat_default_which_beats_bot_default(store: Store) -> None:
    group = -100123
    await store.preferences.set_chat_model(group, "generate", "org/group-gpt", by=1)
    await store.preferences.set_chat_params(group, "generate", {"max_new_tokens": 20, "temperature": 1.5}, by=1)
    await store.preferences.set_user_params(2, "generate", {"temperature": 0.2})

    member = await resolve(store, 2, group)
    assert member.model_id == "org/group-gpt"
    assert member.model_source == "chat"
    assert member.params["max_new_tokens"] == 20
    assert member.params["temperature"] == 0.2
    assert member.param_sources["max_new_tokens"] == "chat"
    assert member.param_sources["temperature"] == "user"

    await store.preferences.set_user_model(2, "generate", "org/own-gpt")
    assert (await resolve(store, 2, group)).model_id == "org/own-gpt"
    assert (await resolve(store, 3, group)).model_id == "org/group-gpt"
    assert (await resolve(store, 3)).model_id == BOT_MODEL


async def test_a_private_chat_never_reads_group_defaults_of_the_same_id(
    store: Store,
) -> None:
    await store.preferences.set_chat_params(5, "generate", {"max_new_tokens": 9}, by=5)
    assert (await resolve(store, 5, 5)).params["max_new_tokens"] == BOT_PARAMS["max_new_tokens"]


async def test_setting_a_param_to_none_removes_only_that_param(store: Store) -> None:
    await store.preferences.set_user_params(4, "generate", {"temperature": 0.4, "top_k": 5})
    assert await store.preferences.set_user_params(4, "generate", {"temperature": None}) == {"top_k": 5}


async def test_reset_forgets_one_task_or_all(store: Store) -> None:
    await store.preferences.set_user_model(8, "generate", "org/a")
    await store.preferences.set_user_model(8, "sentiment", "org/b")
    assert await store.preferences.reset_user(8, "generate") == 1
    assert (await resolve(store, 8)).model_id == BOT_MODEL
    assert (await store.preferences.user_choice(8, "sentiment")).model_id == "org/b"
    assert await store.preferences.reset_user(8) == 1
    assert await store.preferences.user_choice(8, "sentiment") is None


async def test_group_reset_restores_bot_defaults_for_members(store: Store) -> None:
    await store.preferences.set_chat_model(-1, "generate", "org/g", by=1)
    assert await store.preferences.reset_chat(-1) == 1
    assert (await resolve(store, 2, -1)).model_id == BOT_MODEL


@pytest.mark.parametrize(
    ("params", "error", "allowed"),
    [
        ({"temperature": "hot"}, InvalidParamValue, "0.05 … 2"),
        ({"temperature": 9}, InvalidParamValue, "0.05 … 2"),
        ({"max_new_tokens": 1000}, InvalidParamValue, "1 … 256"),
        ({"max_new_tokens": 2.5}, InvalidParamValue, "1 … 256"),
        ({"do_sample": "maybe"}, InvalidParamValue, "on | off"),
        ({"beams": 3}, UnknownParam, None),
    ],
)
async def test_invalid_params_are_refused_and_nothing_is_written(
    store: Store, params, error, allowed
) -> None:
    await store.preferences.set_user_params(9, "generate", {"top_k": 3})
    with pytest.raises(error) as raised:
        await store.preferences.set_user_params(9, "generate", params)
    if allowed is not None:
        assert raised.value.values["allowed"] == allowed
    assert (await store.preferences.user_choice(9, "generate")).params == {"top_k": 3}


async def test_a_param_that_does_not_apply_to_the_task_is_refused(store: Store) -> None:
    with pytest.raises(UnknownParam) as raised:
        await store.preferences.set_user_params(9, "sentiment", {"temperature": 0.5})
    assert raised.value.values["task"] == "sentiment"


async def test_unknown_tasks_are_refused(store: Store) -> None:
    with pytest.raises(UnknownTask):
        await store.preferences.set_user_model(9, "horoscope", "org/x")


async def test_a_stored_value_above_a_lowered_cap_falls_back_to_the_default(database) -> None:
    engine = database.engine()

    await migrate.upgrade(engine)
    generous = Store(engine, rules=param_rules_from_caps(1024, 3))
    await generous.preferences.set_user_params(1, "generate", {"max_new_tokens": 900})
    strict = Store(engine, rules=param_rules_from_caps(100, 3))
    try:
        resolved = await resolve(strict, 1)
        assert resolved.params["max_new_tokens"] == BOT_PARAMS["max_new_tokens"]
        assert resolved.param_sources["max_new_tokens"] == "bot"
    finally:
        await strict.close()


async def test_concurrent_writes_from_many_users_all_land(store: Store) -> None:
    users = range(100, 140)
    await asyncio.gather(
        *(store.preferences.set_user_params(u, "generate", {"max_new_tokens": u - 90}) for u in users),
        *(store.preferences.set_user_model(u, "generate", f"org/model-{u}") for u in users),
    )
    for u in users:
        choice = await store.preferences.user_choice(u, "generate")
        assert choice.model_id == f"org/model-{u}"
        assert choice.params == {"max_new_tokens": u - 90}


async def test_concurrent_sets_from_one_user_never_lose_each_other(store: Store) -> None:
    values = {
        "temperature": 0.7,
        "top_k": 7,
        "top_p": 0.7,
        "max_new_tokens": 77,
        "do_sample": False,
    }
    await asyncio.gather(*(store.preferences.set_user_params(1, "generate", {k: v}) for k, v in values.items()))
    assert (await store.preferences.user_choice(1, "generate")).params == values


async def test_cached_reads_see_this_processes_writes_at_once(store: Store) -> None:
    assert (await resolve(store, 3)).params["top_k"] == BOT_PARAMS["top_k"]
    await store.preferences.set_user_params(3, "generate", {"top_k": 11})
    assert (await resolve(store, 3)).params["top_k"] == 11


async def test_language_choice_wins_over_telegrams(store: Store) -> None:
    await store.preferences.touch_user(12, "zh-hans")
    assert await store.preferences.get_language(12) == "zh-hans"
    await store.preferences.set_language(12, "en")
    assert await store.preferences.get_language(12) == "en"
    await store.preferences.set_language(12, None)
    assert await store.preferences.get_language(12) == "zh-hans"
    assert await store.preferences.get_language(404) is None


async def test_usage_summary_counts_requests_errors_and_latency(store: Store) -> None:
    for latency in (10, 20, 30, 40, 1000):
        await store.usage.log(
            user_id=1, chat_id=1, task="sentiment", model_id="m", latency_ms=latency, ok=True
        )
    await store.usage.log(
        user_id=2,
        chat_id=1,
        task="generate",
        model_id="g",
        latency_ms=5,
        ok=False,
        error="error.pool_busy",
    )
    now = utcnow()
    summary = (await store.usage.series(now - timedelta(hours=1), now, timedelta(hours=1))).summary
    by_task = {t.task: t for t in summary.tasks}
    assert by_task["sentiment"].requests == 5
    assert by_task["sentiment"].p50_ms == 30
    assert by_task["sentiment"].p95_ms == 1000
    assert by_task["generate"].errors == 1
    assert (summary.requests, summary.errors, summary.active_users) == (6, 1, 2)
    assert (summary.p50_ms, summary.p95_ms) == (20, 1000)
    assert await store.usage.count_requests(1, utcnow() - timedelta(minutes=5)) == 5
    assert await store.usage.count_requests(1, utcnow() + timedelta(minutes=5)) == 0


async def test_usage_series_puts_each_request_in_its_hour_and_one_chats_only(
    store: Store,
) -> None:
    until = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
    rows = [
        (until - timedelta(hours=2, minutes=10), "sentiment", 10.0, True, 1, -5),  # 10:20
        (until - timedelta(hours=2, minutes=20), "sentiment", 30.0, False, 2, -5),  # 10:10
        (until - timedelta(minutes=5), "generate", 500.0, True, 1, 1),  # 12:25, private chat
        (until - timedelta(days=2), "generate", 1.0, True, 3, -5),  # before the window
    ]
    async with store.database.session() as session:
        session.add_all(
            UsageRecord(
                created_at=at,
                task=task,
                model_id="m",
                latency_ms=latency,
                ok=ok,
                user_id=user,
                chat_id=chat,
            )
            for at, task, latency, ok, user, chat in rows
        )
    series = await store.usage.series(until - timedelta(hours=3), until, timedelta(hours=1))
    assert [bucket.start.hour for bucket in series.total] == [9, 10, 11, 12]
    assert [bucket.requests for bucket in series.total] == [0, 2, 0, 1]
    ten = series.total[1]
    assert (ten.errors, ten.p50_ms, ten.p95_ms, ten.active_users) == (1, 10.0, 30.0, 2)
    assert series.total[0].p50_ms is None, "an hour without requests has no latency"
    assert [b.requests for b in series.by_task["generate"]] == [0, 0, 0, 1]

    group = await store.usage.series(
        until - timedelta(hours=3), until, timedelta(hours=1), chat_id=-5
    )
    assert group.summary.requests == 2 and set(group.by_task) == {"sentiment"}


async def test_model_rules_are_listed_replaced_and_removed(store: Store) -> None:
    await store.rules.set("org/good", "allow", 1)
    await store.rules.set("org/bad", "deny", 1)
    await store.rules.set("org/good", "deny", 2)
    rules = {r.model_id: r for r in await store.rules.all()}
    assert rules["org/good"].rule == "deny"
    assert rules["org/good"].added_by == 2
    assert await store.rules.remove("org/bad") is True
    assert await store.rules.remove("org/bad") is False
    assert [r.model_id for r in await store.rules.all()] == ["org/good"]


async def test_an_unreachable_database_raises_store_unavailable() -> None:
    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    store = Store(engine, rules=param_rules_from_caps(256, 3))
    try:
        with pytest.raises(StoreUnavailable):
            await resolve(store, 1)
        with pytest.raises(StoreUnavailable):
            await store.preferences.set_user_params(1, "generate", {"top_k": 1})
        with pytest.raises(StoreUnavailable):
            await store.database.ping()
    finally:
        await store.close()


async def test_user_options_are_validated_merged_and_removed(store: Store) -> None:
    assert await store.preferences.get_options(3) == {}
    assert await store.preferences.set_options(3, {"stream": "false"}) == {"stream": "off"}, "an alias"
    assert await store.preferences.set_options(3, {"stream": "Draft"}) == {"stream": "draft"}
    assert await store.preferences.get_options(3) == {"stream": "draft"}
    with pytest.raises(InvalidParamValue):
        await store.preferences.set_options(3, {"stream": "sometimes"})
    with pytest.raises(UnknownParam):
        await store.preferences.set_options(3, {"colour": "blue"})
    assert await store.preferences.set_options(3, {"stream": None}) == {}


async def test_a_hung_database_costs_a_request_seconds_not_minutes() -> None:
    """A server that accepts connections and never answers (a wedged PostgreSQL)."""

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    engine = create_engine(f"postgresql+asyncpg://bot@127.0.0.1:{port}/hung", timeout_s=1.0)
    store = Store(engine, rules=param_rules_from_caps(256, 3))
    started = asyncio.get_running_loop().time()
    try:
        with pytest.raises(StoreUnavailable):
            await store.preferences.set_user_params(1, "generate", {"temperature": 0.5})
        with pytest.raises(StoreUnavailable):
            await store.database.ping()
    finally:
        await store.close()
        server.close()
    assert asyncio.get_running_loop().time() - started < 5


async def test_reads_and_health_checks_do_not_wait_for_a_writer_on_sqlite(tmp_path) -> None:
    """SQLite allows one writer; a read that took the write lock would queue behind it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    engine = create_engine(url, timeout_s=1.0)
    await migrate.upgrade(engine)
    store = Store(engine, rules=param_rules_from_caps(256, 3))
    await store.preferences.set_user_params(1, "generate", {"temperature": 0.5})
    writer = create_engine(url, timeout_s=1.0)
    try:
        async with writer.connect() as connection:
            await connection.exec_driver_sql("UPDATE users SET language = 'en'")
            await store.database.ping()
            choice = await Store(engine, rules=param_rules_from_caps(256, 3)).preferences.user_choice(
                1, "generate"
            )
            assert choice is not None and choice.params == {"temperature": 0.5}
            with pytest.raises(StoreUnavailable):
                await store.preferences.set_user_params(1, "generate", {"temperature": 0.7})
    finally:
        await writer.dispose()
        await store.close()
