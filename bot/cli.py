"""The `hfbot` command: run the bot, manage the database schema, read the usage figures.

Errors a person can fix (no token, a bad token, a database that cannot be
opened) end in one line on stderr and a non-zero exit code, never a traceback.
Only the settings and the standard library are imported before a command runs,
so a missing token is answered at once; the database layer, PTB, transformers
and torch load inside the command that needs them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from bot.config import MissingTokenError, Settings
from bot.errors import StoreUnavailable
from bot.log_setup import configure_logging

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from models.usage import Bucket, UsageSeries

log = logging.getLogger("hfbot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hfbot", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="run the bot (long polling, or a webhook when HFBOT_WEBHOOK_URL is set)"
    )
    run.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not upgrade the database schema on start (same as HFBOT_AUTO_MIGRATE=false)",
    )
    run.set_defaults(handler=_run)

    healthcheck = commands.add_parser(
        "healthcheck",
        help="exit 0 when the bot running here answers /healthz (Docker's HEALTHCHECK, monitors)",
    )
    healthcheck.set_defaults(handler=_healthcheck)

    console = commands.add_parser(
        "console", help="chat with the bot in this terminal (no Telegram account needed)"
    )
    console.add_argument(
        "--demo",
        action="store_true",
        help="use tiny random models built on the spot (offline; answers are random)",
    )
    console.add_argument(
        "--demo-dir",
        type=Path,
        default=Path.home() / ".cache" / "hfbot" / "demo-models",
        help="where --demo keeps its tiny models (default: %(default)s)",
    )
    console.add_argument(
        "--database",
        type=Path,
        help=(
            "the console's own SQLite file (default: console.db, or console-demo.db with "
            "--demo, in $XDG_DATA_HOME/hfbot or ~/.local/share/hfbot); never DATABASE_URL"
        ),
    )
    console.add_argument(
        "--verbose",
        action="store_true",
        help="show log lines and model-loading progress here instead of in the log file",
    )
    console.add_argument(
        "--log-file",
        type=Path,
        default=Path.home() / ".cache" / "hfbot" / "console.log",
        help="where the console's log lines go (default: %(default)s)",
    )
    console.set_defaults(handler=_console)

    models = commands.add_parser("models", help="manage models")
    model_actions = models.add_subparsers(dest="action", required=True)
    fetch = model_actions.add_parser(
        "fetch", help="download models (safetensors only) with a progress bar"
    )
    fetch.add_argument("model_ids", nargs="*", metavar="MODEL_ID")
    fetch.add_argument(
        "--defaults",
        action="store_true",
        help="every model the bot offers (defaults, overrides, /translate targets), one bar",
    )
    fetch.set_defaults(handler=_models_fetch)
    check = model_actions.add_parser(
        "check",
        help="ask the Hub (or HF_ENDPOINT, or ModelScope) whether every model the bot offers "
        "would be accepted, and what it weighs",
    )
    check.set_defaults(handler=_models_check)

    stats = commands.add_parser(
        "stats", help="requests, errors, latency and active users, from the database"
    )
    stats.add_argument(
        "--since",
        default="24h",
        help="24h, 7d, 30d or an ISO date or time, UTC unless it says (default: %(default)s)",
    )
    stats.add_argument(
        "--csv",
        type=Path,
        metavar="FILE",
        help="write the figures per time bucket and task to FILE as CSV instead of a table",
    )
    stats.set_defaults(handler=_stats)

    database = commands.add_parser("db", help="database schema migrations")
    actions = database.add_subparsers(dest="action", required=True)
    up = actions.add_parser("upgrade", help="upgrade the schema (default: to head)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(handler=_db_upgrade)
    down = actions.add_parser("downgrade", help="downgrade the schema to a revision")
    down.add_argument("revision", help="target revision, e.g. -1 or base")
    down.set_defaults(handler=_db_downgrade)
    current = actions.add_parser("current", help="print the schema revision of the database")
    current.set_defaults(handler=_db_current)
    return parser


async def _with_engine(settings: Settings, action: Callable[[AsyncEngine], Any]) -> Any:
    """Run `action` on an engine for the configured database; failing to open it is one line."""
    from sqlalchemy.exc import DBAPIError

    from models.database import create_engine
    from models.opening import failure_reason, sqlite_problem

    problem = sqlite_problem(settings.database_url, settings.database_timeout_s)
    if problem is not None:
        raise StoreUnavailable(reason=problem)
    engine = create_engine(settings.database_url, timeout_s=settings.database_timeout_s)
    try:
        return await action(engine)
    except (DBAPIError, OSError) as exc:
        raise StoreUnavailable(reason=failure_reason(exc)) from exc
    finally:
        await engine.dispose()


def _db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from models import migrate

    asyncio.run(_with_engine(settings, lambda engine: migrate.upgrade(engine, args.revision)))
    print(f"database at revision {args.revision}")
    return 0


def _db_downgrade(settings: Settings, args: argparse.Namespace) -> int:
    from models import migrate

    asyncio.run(_with_engine(settings, lambda engine: migrate.downgrade(engine, args.revision)))
    print(f"database downgraded to {args.revision}")
    return 0


def _db_current(settings: Settings, args: argparse.Namespace) -> int:
    from models import migrate

    revision = asyncio.run(_with_engine(settings, migrate.current_revision))
    head = migrate.head_revision()
    print(f"{revision or 'empty'} (head: {head})")
    return 0


def since_moment(text: str, now: datetime) -> datetime:
    """`24h`, `7d`, `30d`, or an ISO date or time (UTC unless it names a zone), before `now`."""
    from models.usage import WINDOWS

    if text in WINDOWS:
        return now - WINDOWS[text]
    moment = datetime.fromisoformat(text)
    moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    if moment >= now:
        raise ValueError(f"{text} is not in the past")
    return moment


def _stats(settings: Settings, args: argparse.Namespace) -> int:
    """The /stats figures in the terminal (a table) or as CSV, read through the store."""
    from bot.tasks import param_rules_from_caps
    from models.store import Store
    from models.usage import WINDOWS, UsageSeries, step_for

    until = datetime.now(UTC)
    try:
        since = since_moment(args.since, until)
    except ValueError as exc:
        print(f"hfbot: --since wants {', '.join(WINDOWS)} or an ISO date ({exc})", file=sys.stderr)
        return 2

    async def read(engine: AsyncEngine) -> UsageSeries:
        rules = param_rules_from_caps(
            settings.max_new_tokens_cap, settings.max_return_sequences_cap
        )
        store = Store(engine, rules=rules)
        return await store.usage.series(since, until, step_for(until - since))

    series = asyncio.run(_with_engine(settings, read))
    assert isinstance(series, UsageSeries)
    if args.csv is None:
        print_table(series, sys.stdout)
        return 0
    with args.csv.open("w", newline="", encoding="utf-8") as out:
        write_csv(series, out)
    rows = len(series.total) * (len(series.by_task) + 1)
    print(f"wrote {rows} rows ({len(series.total)} time buckets) to {args.csv}")
    return 0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_table(series: UsageSeries, out: TextIO) -> None:
    """Totals per task, then one line per time bucket: what the /stats chart shows."""
    summary = series.summary
    print(
        f"Usage {series.since:%Y-%m-%d %H:%M} to {series.until:%Y-%m-%d %H:%M} UTC, "
        f"{summary.active_users} active users",
        file=out,
    )
    width = max([len("task"), len("all"), *(len(task.task) for task in summary.tasks)])
    print(f"\n{'task':<{width}}  requests  errors  p50 ms  p95 ms", file=out)
    rows: list[tuple[str, int, int, float | None, float | None]] = [
        (t.task, t.requests, t.errors, t.p50_ms, t.p95_ms) for t in summary.tasks
    ]
    rows.append(("all", summary.requests, summary.errors, summary.p50_ms, summary.p95_ms))
    for name, requests, errors, p50, p95 in rows:
        print(
            f"{name:<{width}}  {requests:>8}  {errors:>6}  {_ms(p50):>6}  {_ms(p95):>6}", file=out
        )
    print(f"\n{'from (UTC)':<16}  requests  errors  p50 ms  p95 ms  users", file=out)
    for bucket in series.total:
        print(
            f"{bucket.start:%Y-%m-%d %H:%M}  {bucket.requests:>8}  {bucket.errors:>6}  "
            f"{_ms(bucket.p50_ms):>6}  {_ms(bucket.p95_ms):>6}  {bucket.active_users:>5}",
            file=out,
        )


CSV_COLUMNS = ("start_utc", "task", "requests", "errors", "p50_ms", "p95_ms", "active_users")


def write_csv(series: UsageSeries, out: TextIO) -> None:
    """One row per time bucket for all tasks together (`task` = `all`), then one per task."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    tasks: list[tuple[str, list[Bucket]]] = [("all", series.total), *series.by_task.items()]
    for index, start in enumerate(series.starts):
        for name, buckets in tasks:
            bucket = buckets[index]
            writer.writerow(
                (
                    start.isoformat(),
                    name,
                    bucket.requests,
                    bucket.errors,
                    "" if bucket.p50_ms is None else round(bucket.p50_ms, 1),
                    "" if bucket.p95_ms is None else round(bucket.p95_ms, 1),
                    bucket.active_users,
                )
            )


def _console(settings: Settings, args: argparse.Namespace) -> int:
    """The terminal shows the conversation alone; logs and progress bars go to the log file."""
    if not args.verbose:
        configure_logging(settings, to_file=args.log_file)
        os.environ["TQDM_DISABLE"] = "1"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    from bot.offline.console import (
        DEMO_NOTICE,
        console_database,
        console_files,
        console_settings,
        demo_settings,
        run_console,
    )

    database = args.database or console_database(args.demo)
    settings = console_settings(settings, database)
    if args.demo:
        print(DEMO_NOTICE, file=sys.stderr)
        settings = demo_settings(settings, args.demo_dir)
    asyncio.run(run_console(settings, files=console_files(database)))
    return 0


def _models_fetch(settings: Settings, args: argparse.Namespace) -> int:
    if args.defaults == bool(args.model_ids):
        print("hfbot: name models to fetch, or --defaults (not both)", file=sys.stderr)
        return 2
    if args.defaults:
        from bot.hub.check import fetch_defaults_command

        return fetch_defaults_command(settings)
    from bot.hub.prefetch import fetch_command

    return fetch_command(args.model_ids, settings)


def _models_check(settings: Settings, args: argparse.Namespace) -> int:
    from bot.engine.model_cache import resolve_budget
    from bot.hub.check import check_command

    budget = resolve_budget(settings.pool_memory_budget_mb, settings.pool_memory_share)
    return check_command(settings, budget)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    """Settings and the database are checked before the ML stack loads (which takes seconds)."""
    settings.require_token()
    from models.opening import sqlite_problem

    problem = sqlite_problem(settings.database_url, settings.database_timeout_s)
    if problem is not None:
        raise StoreUnavailable(reason=problem)
    if args.no_migrate:
        settings = settings.model_copy(update={"auto_migrate": False})
    from telegram.error import InvalidToken

    from bot.app.serve import serve

    try:
        asyncio.run(serve(settings))
    except InvalidToken:
        print(
            "hfbot: Telegram rejected TELEGRAM_BOT_TOKEN: check it, or ask @BotFather for a "
            "new one if it was revoked.",
            file=sys.stderr,
        )
        return 2
    return 0


def healthz_url(settings: Settings) -> str | None:
    """Where the bot these settings run serves /healthz, as seen from this machine; None: nowhere.

    The metrics port when set, else the webhook port in webhook mode; polling
    without a metrics port serves no HTTP at all.
    """
    if settings.metrics_port is not None:
        host, port = settings.metrics_listen, settings.metrics_port
    elif settings.webhook_url is not None:
        host, port = settings.webhook_listen, settings.webhook_port
    else:
        return None
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"


def _healthcheck(settings: Settings, args: argparse.Namespace) -> int:
    """Read the settings as the bot does (so an empty variable means the same to both), then ask."""
    import json
    import urllib.error
    import urllib.request

    url = healthz_url(settings)
    if url is None:
        print(
            "hfbot: no /healthz to ask: polling serves it only with HFBOT_METRICS_PORT set",
            file=sys.stderr,
        )
        return 1
    # On the webhook port /healthz names the failing part only to the metrics token's bearer.
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    asked = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token}"} if token else {}
    )
    try:
        with urllib.request.urlopen(asked, timeout=4) as answer:
            answer.read()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        try:
            parts = json.loads(body).items()
            failing = [f"{name} {part}" for name, part in parts if name != "ok" and part != "ok"]
        except (ValueError, AttributeError):
            failing = []
        detail = f": {', '.join(failing)}" if failing else ""
        print(f"hfbot: unhealthy, {url} answered {exc.code}{detail}", file=sys.stderr)
        return 1
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        print(f"hfbot: no answer from {url} ({reason})", file=sys.stderr)
        return 1
    print(f"healthy ({url})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        print(f"hfbot: bad setting {field}: {first['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        status: int = args.handler(settings, args)
        return status
    except MissingTokenError as exc:
        print(f"hfbot: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        from models.opening import location, sqlite_path

        verb = "open" if sqlite_path(settings.database_url) is not None else "reach"
        print(
            f"hfbot: cannot {verb} the database at {location(settings.database_url)} "
            f"({exc.values.get('reason')})",
            file=sys.stderr,
        )
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
