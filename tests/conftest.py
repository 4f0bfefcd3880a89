"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL, the running
bot (`bot`), the Hub stand-in (`hub`) and the recorder of what no engine request may
reach (`elsewhere`), defined once for every test folder.

PostgreSQL tests run in a schema of their own (search_path), created and
dropped around each test, so parallel runs against one server never collide.
With CI=true a PostgreSQL that cannot be reached fails the run instead of
skipping, so a broken CI machine cannot pass silently.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from huggingface_hub import constants
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.tasks import param_rules_from_caps
from models import migrate
from models.database import create_engine
from models.store import Store
from tests.support.engine_standins import OPERATOR_TOKEN, Elsewhere
from tests.support.engine_standins import serve as serve_engine
from tests.support.harness import RunningBot, bot_settings, running_bot
from tests.support.hub_standin import HubStandIn, serve

pytest_plugins = ["tests.support.model_fixtures"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

POSTGRES_URL = os.environ.get(
    "HFBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _postgres_reachable() -> str | None:
    try:
        connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL), timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


@pytest.fixture(scope="session", autouse=True)
def onnx_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """ONNX exports of this run's tiny models, shared by every test and never in the Hub cache.

    Each tiny model is exported once a run; tests that count exports use a folder of their own.
    """
    path = tmp_path_factory.mktemp("onnx")
    previous = os.environ.get("HFBOT_ENGINE_ONNX_CACHE_DIR")
    os.environ["HFBOT_ENGINE_ONNX_CACHE_DIR"] = str(path)
    yield path
    if previous is None:
        del os.environ["HFBOT_ENGINE_ONNX_CACHE_DIR"]
    else:
        os.environ["HFBOT_ENGINE_ONNX_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def postgres_available() -> None:
    problem = asyncio.run(_postgres_reachable())
    if problem is None:
        return
    message = f"PostgreSQL at {POSTGRES_URL} is not reachable ({problem})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis replicas share in tests; skipped where none runs (failing in CI)."""
    host, port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError as error:
        message = f"Redis at {REDIS_URL} is not reachable ({error})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
def postgres_schema(postgres_available: None) -> Iterator[str]:
    """A schema made for this test alone, dropped afterwards."""
    schema = f"hfbot_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        asyncio.run(_admin(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def postgres_database(postgres_available: None) -> Iterator[str]:
    """The URL of a PostgreSQL database made for this test alone (for a bot in its own process,
    which cannot be handed a search_path), dropped afterwards."""
    name = f"hfbot_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@dataclass(frozen=True)
class Database:
    """Where a test's database lives: a URL plus the engine options that isolate it."""

    url: str
    engine_kwargs: dict[str, Any]

    @property
    def backend(self) -> str:
        return "sqlite" if self.url.startswith("sqlite") else "postgresql"

    def engine(self) -> AsyncEngine:
        return create_engine(self.url, **self.engine_kwargs)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """An empty database, once on SQLite (a temp file) and once on PostgreSQL (a fresh schema)."""
    if request.param == "sqlite":
        return Database(f"sqlite+aiosqlite:///{tmp_path / 'hfbot.db'}", {})
    schema = request.getfixturevalue("postgres_schema")
    return Database(POSTGRES_URL, {"connect_args": {"server_settings": {"search_path": schema}}})


@pytest.fixture
async def store(database: Database) -> AsyncIterator[Store]:
    """A Store on a database migrated to head, with the registry's parameter rules."""
    engine = database.engine()
    await migrate.upgrade(engine)
    store = Store(engine, rules=param_rules_from_caps(256, 3))
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    """Settings a test module's bot runs with; a module overrides this fixture to change them."""
    return {}


@pytest.fixture
async def bot(
    tmp_path: Path, tiny_models_dir: Path, bot_overrides: dict[str, Any]
) -> AsyncIterator[RunningBot]:
    """The real bot, polling the Bot API emulator, with a tiny model for every task."""
    async with running_bot(bot_settings(tmp_path, tiny_models_dir, **bot_overrides)) as running:
        yield running


@pytest.fixture
async def elsewhere(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Elsewhere]:
    """The Hub and its inference router, online, on one recorder on 127.0.0.1, with the
    operator's own Hub token set: what no request to an engine may reach or carry."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    async with serve_engine(Elsewhere()) as recorder:
        monkeypatch.setattr(constants, "ENDPOINT", recorder.url)
        monkeypatch.setattr(constants, "INFERENCE_PROXY_TEMPLATE", recorder.url + "/{provider}")
        monkeypatch.setenv("HF_TOKEN", OPERATOR_TOKEN)
        yield recorder


@pytest.fixture
async def hub(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[HubStandIn]:
    """A Hub stand-in on 127.0.0.1, reached by the real huggingface_hub client (online mode)."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    async with serve(HubStandIn()) as standin:
        yield standin
