"""The `hfbot` command: run the bot, manage the database schema.

Errors a person can fix (no token, database unreachable) end in one line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError
from telegram.error import InvalidToken

from bot.config import MissingTokenError, Settings
from bot.errors import StoreUnavailable
from bot.log_setup import configure_logging
from models import migrate
from models.store import create_engine

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
    fetch.add_argument("model_ids", nargs="+", metavar="MODEL_ID")
    fetch.set_defaults(handler=_models_fetch)

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


async def _with_engine(settings: Settings, action: Callable) -> object:
    engine = create_engine(settings.database_url)
    try:
        return await action(engine)
    except OSError as exc:
        raise StoreUnavailable(reason=str(exc)) from exc
    finally:
        await engine.dispose()


def _db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(_with_engine(settings, lambda engine: migrate.upgrade(engine, args.revision)))
    print(f"database at revision {args.revision}")
    return 0


def _db_downgrade(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(_with_engine(settings, lambda engine: migrate.downgrade(engine, args.revision)))
    print(f"database downgraded to {args.revision}")
    return 0


def _db_current(settings: Settings, args: argparse.Namespace) -> int:
    revision = asyncio.run(_with_engine(settings, migrate.current_revision))
    head = migrate.head_revision()
    print(f"{revision or 'empty'} (head: {head})")
    return 0


def _console(settings: Settings, args: argparse.Namespace) -> int:
    """The terminal shows the conversation alone; logs and progress bars go to the log file."""
    if not args.verbose:
        configure_logging(settings, to_file=args.log_file)
        os.environ["TQDM_DISABLE"] = "1"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    from bot.offline.console import DEMO_NOTICE, demo_settings, run_console

    if args.demo:
        print(DEMO_NOTICE, file=sys.stderr)
        settings = demo_settings(settings, args.demo_dir)
    asyncio.run(run_console(settings))
    return 0


def _models_fetch(settings: Settings, args: argparse.Namespace) -> int:
    from bot.hub.prefetch import fetch_command

    return fetch_command(args.model_ids, settings)


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app.serve import serve

    settings.require_token()
    if args.no_migrate:
        settings = settings.model_copy(update={"auto_migrate": False})
    asyncio.run(serve(settings))
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
        return args.handler(settings, args)
    except MissingTokenError as exc:
        print(f"hfbot: {exc}", file=sys.stderr)
        return 2
    except InvalidToken:
        print(
            "hfbot: Telegram rejected TELEGRAM_BOT_TOKEN: check it, or ask @BotFather for a "
            "new one if it was revoked.",
            file=sys.stderr,
        )
        return 2
    except StoreUnavailable as exc:
        print(
            f"hfbot: cannot reach the database at {_safe_url(settings.database_url)} "
            f"({exc.values.get('reason')})",
            file=sys.stderr,
        )
        return 3
    except KeyboardInterrupt:
        return 130


def _safe_url(url: str) -> str:
    """The database URL with any password masked, for messages people may paste in chats."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if __name__ == "__main__":
    sys.exit(main())
