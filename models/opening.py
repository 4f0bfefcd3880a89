"""Why a database cannot be opened, in words an operator can act on.

`hfbot run` and `hfbot db …` end a failed start in one line naming where the
database is (a SQLite file's absolute path, or the server's URL with its
password hidden) and why it cannot be used. A SQLite file is checked before
any async connection is made: a folder that is missing or not writable, or a
file that is not a database, will not heal by waiting, and a failed aiosqlite
connection leaves a worker thread that can outlive the event loop.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError


def sqlite_path(url: str) -> Path | None:
    """The absolute path of a SQLite file URL; None for other databases and in-memory ones."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser().absolute()


def location(url: str) -> str:
    """Where the database is, fit for a message people paste in chats: no password."""
    path = sqlite_path(url)
    return str(path) if path is not None else make_url(url).render_as_string(hide_password=True)


def sqlite_problem(url: str, timeout_s: float = 5.0) -> str | None:
    """Why the bot could not open and write this SQLite file, or None (also for other databases).

    Creates the file when its folder allows it, as the bot's first start would.
    """
    path = sqlite_path(url)
    if path is None:
        return None
    folder = path.parent
    if not folder.is_dir():
        return f"the folder {folder} does not exist"
    if path.is_dir():
        return f"{path} is a folder, not a file"
    if not os.access(folder, os.W_OK | os.X_OK):
        what = "cannot create the file" if not path.exists() else "cannot write its journal"
        return f"{what}: the folder {folder} is not writable by {_who()}"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f"the file is not writable by {_who()}"
    try:
        connection = sqlite3.connect(path, timeout=timeout_s)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("PRAGMA schema_version").fetchone()
            connection.rollback()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        return str(exc)
    return None


def failure_reason(exc: BaseException) -> str:
    """What went wrong, in a few words: the driver's own message where it has one."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _who() -> str:
    """The user this process runs as, by name where it has one, with its uid."""
    uid = os.getuid()
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"
