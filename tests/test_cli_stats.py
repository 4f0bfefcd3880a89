"""`hfbot stats`: the /stats figures in the terminal or as CSV, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
from datetime import timedelta
from pathlib import Path

import pytest

from bot import cli
from bot.tasks import param_rules_from_caps
from models import migrate
from models.base import utcnow
from models.store import Store


@pytest.fixture
async def logged(database, monkeypatch: pytest.MonkeyPatch):
    """A migrated database with three requests, and `hfbot` pointed at it."""
    engine = database.engine()
    await migrate.upgrade(engine)
    store = Store(engine, rules=param_rules_from_caps(256, 3))
    for user, task, latency, ok in (
        (1, "sentiment", 40.0, True),
        (2, "sentiment", 60.0, False),
        (1, "generate", 900.0, True),
    ):
        await store.usage.log(
            user_id=user, chat_id=user, task=task, model_id="m", latency_ms=latency, ok=ok
        )
    await store.close()
    monkeypatch.setenv("DATABASE_URL", database.url)
    monkeypatch.setattr("models.database.create_engine", lambda url, **options: database.engine())
    return database


async def run(*args: str) -> int:
    """`hfbot …` as the terminal runs it (its own event loop, so in a thread here)."""
    return await asyncio.to_thread(cli.main, list(args))


async def test_stats_prints_totals_per_task_and_a_line_per_hour(logged, capsys) -> None:
    assert await run("stats", "--since", "24h") == 0
    out = capsys.readouterr().out
    assert "2 active users" in out.splitlines()[0]
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    assert lines["sentiment"] == ["2", "1", "40", "60"]
    assert lines["generate"] == ["1", "0", "900", "900"]
    assert lines["all"] == ["3", "1", "60", "900"]
    hourly = [line for line in out.splitlines() if line[:2] == "20" and line[4] == "-"]
    assert len(hourly) in (24, 25), "one line per hour of the day"
    assert sum(int(line.split()[2]) for line in hourly) == 3


async def test_stats_writes_csv_per_bucket_and_task(logged, tmp_path: Path, capsys) -> None:
    target = tmp_path / "usage.csv"
    since = (utcnow() - timedelta(days=20)).date().isoformat()
    assert await run("stats", "--since", since, "--csv", str(target)) == 0
    assert f"to {target}" in capsys.readouterr().out
    with target.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert set(rows[0]) == set(cli.CSV_COLUMNS)
    totals = [row for row in rows if row["task"] == "all"]
    assert len(totals) in (21, 22), "a day per row since a date 20 days ago"
    assert totals[0]["start_utc"] == f"{since}T00:00:00+00:00"
    assert sum(int(row["requests"]) for row in totals) == 3
    [busy] = [row for row in rows if row["task"] == "generate" and row["requests"] == "1"]
    assert busy["p95_ms"] == "900.0"


async def test_a_since_that_is_not_a_window_or_a_past_date_is_one_line(logged, capsys) -> None:
    assert await run("stats", "--since", "yesterday") == 2
    assert await run("stats", "--since", "2999-01-01") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(
        line.startswith("hfbot: --since wants 24h, 7d, 30d") for line in err
    )
