"""Downloading a model's safe files ahead of use, with progress a person can watch.

`hfbot models fetch` uses it to fill the cache (or HFBOT_MODEL_DIR) before an
air-gapped start, and the chat handlers use it so the first use of a model
shows one status message that fills up instead of a long silence.

Only safetensors weights, configs and tokenizer files are fetched: pickle
weights (.bin, .pt, .ckpt) and Python files never reach the disk.
"""

from __future__ import annotations

import asyncio
import html
import sys
import threading
from collections.abc import Awaitable, Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from huggingface_hub import snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import validate_repo_id
from tqdm.auto import tqdm

from bot.config import Settings
from bot.errors import (
    GatedModel,
    HubUnavailable,
    UnknownModel,
    UnsafeWeights,
    UserFacingError,
)
from bot.hub.access import HubAccess, is_path_like
from bot.hub.facts import OTHER_WEIGHTS, PICKLE_WEIGHTS, SAFE_WEIGHTS, describe_bytes
from bot.i18n import DEFAULT_LANGUAGE, t

Progress = Callable[[int, int], None]

FETCH_PATTERNS = (
    SAFE_WEIGHTS,
    "*.json",
    "*.txt",
    "*.model",
    "*.spm",
    "*.tiktoken",
    "README.md",
)
NEVER_FETCH = (*PICKLE_WEIGHTS, *OTHER_WEIGHTS, "*.py")


def _byte_progress_class(report: Progress) -> type[tqdm]:
    """A silent tqdm that forwards snapshot_download's byte counter to `report`.

    snapshot_download drives two byte bars: network transfer (compressed on
    Xet, so its total is a guess) and bytes written, whose total grows by
    each file's size as the file starts. Only the second one is reported,
    recognised by the description huggingface_hub gives it. Download threads
    update it concurrently: the lock keeps the count exact and the reports in
    order, and a retry that rewinds a file never makes the reported count shrink.
    """
    lock = threading.Lock()

    class ByteProgress(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._reports = str(kwargs.get("desc", "")).startswith("Reconstruct")
            self._done = 0
            self._shown = 0
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if self._reports and n:
                with lock:
                    self._done += int(n)
                    self._shown = max(self._shown, self._done)
                    report(self._shown, max(int(self.total or 0), self._shown))
            return super().update(n)

    return ByteProgress


def _snapshot(model_id: str, access: HubAccess, report: Progress | None) -> Path:
    local_dir = access.model_dir / model_id if access.model_dir else None
    folder = snapshot_download(
        model_id,
        endpoint=access.endpoint,
        token=access.token_arg(),
        cache_dir=access.cache_dir,
        local_dir=local_dir,
        allow_patterns=list(FETCH_PATTERNS),
        ignore_patterns=list(NEVER_FETCH),
        tqdm_class=_byte_progress_class(report) if report else None,
    )
    return Path(folder)


async def fetch_model(
    model_id: str, progress: Progress | None = None, *, access: HubAccess
) -> Path:
    """Download a model's safe files and return their folder (network: runs in a thread).

    `progress(done_bytes, total_bytes)` is called on the event loop, never
    from the download threads, so it may touch the bot's state directly.
    """
    try:
        validate_repo_id(model_id)
    except HFValidationError:
        raise UnknownModel(model=model_id) from None
    report: Progress | None = None
    if progress is not None:
        loop = asyncio.get_running_loop()

        def report(done: int, total: int) -> None:
            loop.call_soon_threadsafe(progress, done, total)

    try:
        folder = await asyncio.to_thread(_snapshot, model_id, access, report)
    except GatedRepoError:
        raise GatedModel(model=model_id, has_token=access.token is not None) from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise UnknownModel(model=model_id) from None
    except (LocalEntryNotFoundError, HfHubHTTPError):
        raise HubUnavailable(model=model_id) from None
    if not any(fnmatch(item.name, SAFE_WEIGHTS) for item in folder.rglob("*")):
        raise UnsafeWeights(model=model_id, found="none")
    return folder


async def is_downloaded(model_id: str, access: HubAccess) -> bool:
    """Whether a model's config is already on disk, so its first use needs no download."""

    def check() -> bool:
        if is_path_like(model_id) or access.model_dir_path(model_id) is not None:
            return True
        cached = try_to_load_from_cache(model_id, "config.json", cache_dir=access.cache_dir)
        return isinstance(cached, str)

    return await asyncio.to_thread(check)


def describe_progress(model_id: str, done: int, total: int) -> str:
    """The text of a download status message: `Downloading x: 12.0 / 48.0 MiB (25%)`."""
    if total <= 0:
        return f"Downloading {model_id}…"
    percent = min(100, done * 100 // total)
    return f"Downloading {model_id}: {describe_bytes(done)} / {describe_bytes(total)} ({percent}%)"


class ThrottledStatus:
    """Turns a stream of byte counts into edits of one status message, at most one per interval.

    Telegram allows about one message per second per chat and 20 per minute
    per group, so a download that reports every chunk must not edit on every
    chunk. The last state is always shown by `finish()`.
    """

    def __init__(
        self,
        model_id: str,
        edit: Callable[[str], Awaitable[None]],
        *,
        min_interval_s: float = 3.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._model_id = model_id
        self._edit = edit
        self._interval = min_interval_s
        self._clock = clock or asyncio.get_running_loop().time
        self._last_edit: float | None = None
        self._latest = (0, 0)
        self._shown: str | None = None
        self._pending: asyncio.Task[None] | None = None

    def __call__(self, done: int, total: int) -> None:
        """The `progress` callback of `fetch_model`; call it on the event loop."""
        self._latest = (done, total)
        now = self._clock()
        due = self._last_edit is None or now - self._last_edit >= self._interval
        if due and (self._pending is None or self._pending.done()):
            self._last_edit = now
            self._pending = asyncio.ensure_future(self._show())

    async def finish(self) -> None:
        """Wait for an edit in flight, then show the final count if it is not shown yet."""
        if self._pending is not None:
            await self._pending
        await self._show()

    async def _show(self) -> None:
        text = describe_progress(self._model_id, *self._latest)
        if text != self._shown:
            self._shown = text
            await self._edit(text)


def fetch_command(ids: list[str], access: HubAccess | None = None) -> int:
    """`hfbot models fetch <id>…`: one progress bar per model on stderr; 1 if any failed.

    Prints `<id>\t<folder>` on stdout per fetched model, for scripts.
    """
    access = access or HubAccess.from_settings(Settings())
    failed = 0
    for model_id in ids:
        with tqdm(desc=model_id, unit="B", unit_scale=True, file=sys.stderr) as bar:

            def show(done: int, total: int, bar: tqdm = bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                folder = asyncio.run(fetch_model(model_id, show, access=access))
            except UserFacingError as error:
                failed += 1
                reason = html.unescape(t(DEFAULT_LANGUAGE, error.key, error.values))
                bar.write(f"{model_id}: not fetched: {reason}", file=sys.stderr)
                continue
        print(f"{model_id}\t{folder}")
    return 1 if failed else 0


class ModelDownloads:
    """One download per model however many requests need it at once.

    The first request for a model that is not on disk starts the download and
    reports its progress; requests arriving meanwhile wait for the same
    download instead of starting their own.
    """

    def __init__(
        self, access: HubAccess, fetch: Callable[..., Awaitable[Path]] = fetch_model
    ) -> None:
        self.access = access
        self._fetch = fetch
        self._running: dict[str, asyncio.Future[Path]] = {}
        self._done: set[str] = set()

    def in_progress(self, model_id: str) -> bool:
        return model_id in self._running

    async def needed(self, model_id: str) -> bool:
        """Whether a download must run first; the disk is asked once per model, not per request."""
        if model_id in self._done:
            return False
        if await is_downloaded(model_id, self.access):
            self._done.add(model_id)
            return False
        return True

    async def fetch(self, model_id: str, progress: Progress | None = None) -> Path:
        running = self._running.get(model_id)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Path] = asyncio.ensure_future(
            self._fetch(model_id, progress, access=self.access)
        )
        self._running[model_id] = future

        def done(finished: asyncio.Future[Path]) -> None:
            self._running.pop(model_id, None)
            if not finished.cancelled() and finished.exception() is None:
                self._done.add(model_id)

        future.add_done_callback(done)
        return await asyncio.shield(future)
