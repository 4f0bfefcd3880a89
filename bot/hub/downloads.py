"""Downloading exactly the files a vetted model loads, with progress a person can watch.

`hfbot models fetch` uses it to fill the cache (or HFBOT_MODEL_DIR) before an
air-gapped start, and the chat handlers use it so the first use of a model
shows one status message that fills up instead of a long silence.

What is fetched is planned from the facts vetting read (`plan_download`): the
revision vetting saw (its commit, so a push after vetting changes nothing),
the weight files loading reads and the small files beside them, each under a
size cap. Pickle weights, code and stray .safetensors files never reach the
disk. Downloads run in threads of their own, and what the bot downloads into
the Hugging Face cache stays within a disk budget, the least recently used
models going first and never one in use.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

from huggingface_hub import scan_cache_dir, snapshot_download, try_to_load_from_cache
from huggingface_hub.errors import (
    CacheNotFound,
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from tqdm.auto import tqdm

from bot.errors import (
    GatedModel,
    HubUnavailable,
    ModelChanged,
    ModelTooLarge,
    RemoteCodeRequired,
    UnknownModel,
    UnsafeWeights,
)
from bot.hub import modelscope
from bot.hub.facts import WEIGHTS_INDEX, ModelFacts, describe_bytes, facts_from_directory
from bot.hub.hub_access import HubAccess, hub_form

Progress = Callable[[int, int], None]

# Configs, tokenizers, processors and chat templates: what loading reads besides the weights.
SUPPORT_FILES = ("*.json", "*.txt", "*.model", "*.spm", "*.tiktoken", "*.jinja", "README.md")
# No config or tokenizer file is this large; a larger one is not what it claims to be.
SUPPORT_FILE_CAP_BYTES = 64 * 2**20

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DownloadPlan:
    """The files of one revision of a model that loading needs, as vetting saw them.

    `sizes` are the files' sizes as vetting read them (where the source said):
    the total a progress bar shows, and what the files on disk must match.
    """

    model_id: str
    revision: str | None
    files: tuple[str, ...]
    sizes: Mapping[str, int] = field(default_factory=dict)
    source: Literal["hub", "modelscope"] = "hub"

    @property
    def total_bytes(self) -> int | None:
        """Bytes the download writes, when every planned file's size is known."""
        known = [self.sizes[name] for name in self.files if name in self.sizes]
        return sum(known) if len(known) == len(self.files) else None


def plan_download(facts: ModelFacts, max_weights_bytes: int | None) -> DownloadPlan:
    """What to fetch for a model: its loaded weights and root-level support files, each capped.

    Index files of other weight formats (`pytorch_model.bin.index.json`) are
    left out; nothing in a subfolder is loaded, so nothing there is fetched,
    except a diffusers pipeline's component folders, each read like a model's root.
    """
    weights = facts.loaded_weights
    if not weights:
        raise UnsafeWeights(
            model=facts.model_id, found=", ".join(facts.other_weight_files) or "none"
        )
    folders = {"", *(f"{component}/" for component in facts.components)}
    indexes = {
        WEIGHTS_INDEX,
        *(
            f"{component}/{stem}.safetensors.index.json"
            for component in facts.components
            for stem in ("diffusion_pytorch_model", "model")
        ),
    }
    support = tuple(
        name
        for name in facts.files
        if name[: name.rfind("/") + 1] in folders
        and any(fnmatch(name.rsplit("/", 1)[-1], pattern) for pattern in SUPPORT_FILES)
        and not (name.endswith(".index.json") and name not in indexes)
    )
    for name in (*weights, *support):
        size = facts.file_sizes.get(name)
        cap = max_weights_bytes if name in weights else SUPPORT_FILE_CAP_BYTES
        if size is not None and cap is not None and size > cap:
            raise ModelTooLarge(
                model=f"{facts.model_id}/{name}",
                size=describe_bytes(size),
                limit=describe_bytes(cap),
            )
    files = tuple(dict.fromkeys((*weights, *support)))
    sizes = {name: facts.file_sizes[name] for name in files if name in facts.file_sizes}
    return DownloadPlan(facts.model_id, facts.revision, files, sizes, facts.source)


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
            shown: bool | None = super().update(n)
            return shown

    return ByteProgress


def _snapshot(
    plan: DownloadPlan, access: HubAccess, report: Progress | None, into_model_dir: bool
) -> Path:
    local_dir = access.model_dir / plan.model_id if into_model_dir and access.model_dir else None
    if plan.source == "modelscope":
        assert plan.revision is not None
        return modelscope.fetch(
            plan.model_id, plan.revision, plan.files, access.modelscope, report, into=local_dir
        )
    folder = snapshot_download(
        plan.model_id,
        revision=plan.revision,
        endpoint=access.endpoint,
        token=access.token_arg(),
        cache_dir=access.cache_dir,
        local_dir=local_dir,
        allow_patterns=list(plan.files),
        tqdm_class=_byte_progress_class(report) if report else None,
    )
    return Path(folder)


async def fetch_model(
    plan: DownloadPlan,
    progress: Progress | None = None,
    *,
    access: HubAccess,
    executor: Executor | None = None,
    into_model_dir: bool = False,
) -> Path:
    """Download the planned files and return their folder (network: runs in `executor`).

    `progress(done_bytes, total_bytes)` is called on the event loop, never
    from the download threads, so it may touch the bot's state directly.
    `into_model_dir` puts the files in HFBOT_MODEL_DIR (for `hfbot models fetch`)
    instead of the Hugging Face cache.
    """
    loop = asyncio.get_running_loop()
    report: Progress | None = None
    if progress is not None:

        def report(done: int, total: int) -> None:
            loop.call_soon_threadsafe(progress, done, total)

    try:
        folder = await loop.run_in_executor(
            executor, _snapshot, plan, access, report, into_model_dir
        )
    except GatedRepoError:
        raise GatedModel(model=plan.model_id, has_token=access.token is not None) from None
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise UnknownModel(model=plan.model_id) from None
    except (LocalEntryNotFoundError, HfHubHTTPError, modelscope.ModelScopeUnreachable):
        raise HubUnavailable(model=plan.model_id) from None
    except modelscope.ModelScopeMissing:
        raise UnknownModel(model=plan.model_id) from None
    await loop.run_in_executor(executor, verify_download, plan, folder)
    return folder


def verify_download(plan: DownloadPlan, folder: Path) -> None:
    """Vet the files on disk by the rules vetting applied to the metadata, before any load
    (blocking: disk): the planned files at the sizes vetting saw, safetensors weights that
    loading reads, and no code of the model's own."""
    for name in plan.files:
        path = folder / name
        if not path.is_file():
            raise HubUnavailable(model=plan.model_id)
        expected = plan.sizes.get(name)
        if expected is not None and path.stat().st_size != expected:
            raise ModelChanged(model=plan.model_id, file=name)
    facts = facts_from_directory(folder, plan.model_id)
    if not any(name in plan.files for name in facts.loaded_weights):
        raise UnsafeWeights(
            model=plan.model_id, found=", ".join(facts.other_weight_files) or "none"
        )
    if facts.needs_remote_code():
        raise RemoteCodeRequired(model=plan.model_id)


def downloaded_folder(plan: DownloadPlan, access: HubAccess) -> Path | None:
    """The folder of this revision when every planned file is on disk (blocking: disk)."""
    if access.model_dir_path(plan.model_id) is not None:
        return access.model_dir_path(plan.model_id)
    if plan.source == "modelscope":
        assert plan.revision is not None
        return modelscope.downloaded(plan.model_id, plan.revision, plan.sizes, access.modelscope)
    folder: Path | None = None
    for name in plan.files:
        cached = try_to_load_from_cache(
            plan.model_id, name, revision=plan.revision, cache_dir=access.cache_dir
        )
        if not isinstance(cached, str):
            return None
        folder = Path(cached).parents[name.count("/")]
    return folder


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


class ModelDownloads:
    """The bot's downloads: one per model however many requests need it, in threads of its own.

    The first request for a model that is not on disk starts the download and
    reports its progress; requests arriving meanwhile wait for the same
    download instead of starting their own. After each download the Hugging
    Face cache is brought back within `disk_budget_bytes`.
    """

    def __init__(
        self,
        access: HubAccess,
        *,
        workers: int = 2,
        disk_budget_bytes: int | None = None,
        in_use: Callable[[], Iterable[str]] = tuple,
        fetch: Callable[..., Awaitable[Path]] = fetch_model,
    ) -> None:
        self.access = access
        self._fetch = fetch
        self._budget = disk_budget_bytes
        self._in_use = in_use
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="hfbot-download"
        )
        self._running: dict[str, asyncio.Future[Path]] = {}
        self._folders: dict[tuple[str, str | None], Path] = {}

    def in_progress(self, model_id: str) -> bool:
        return model_id in self._running

    async def folder(self, plan: DownloadPlan) -> Path | None:
        """Where this revision already is on disk; the disk is asked until it is found."""
        key = (plan.model_id, plan.revision)
        found = self._folders.get(key)
        if found is not None:
            return found
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(self._executor, downloaded_folder, plan, self.access)
        if found is not None:
            self._folders[key] = found
        return found

    async def fetch(self, plan: DownloadPlan, progress: Progress | None = None) -> Path:
        running = self._running.get(plan.model_id)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Path] = asyncio.ensure_future(self._download(plan, progress))
        self._running[plan.model_id] = future
        future.add_done_callback(lambda _: self._running.pop(plan.model_id, None))
        return await asyncio.shield(future)

    async def _download(self, plan: DownloadPlan, progress: Progress | None) -> Path:
        folder = await self._fetch(plan, progress, access=self.access, executor=self._executor)
        self._folders[(plan.model_id, plan.revision)] = folder
        if self._budget is not None:
            keep = {hub_form(model_id) for model_id in (*self._in_use(), *self._running)}
            loop = asyncio.get_running_loop()
            deleted = await loop.run_in_executor(
                self._executor, keep_within_budget, self.access, self._budget, keep
            )
            forgotten = {hub_form(model_id) for model_id in deleted}
            for key in [key for key in self._folders if hub_form(key[0]) in forgotten]:
                del self._folders[key]
        return folder

    def close(self) -> None:
        """Downloads under way finish in their threads; no new one starts."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def keep_within_budget(access: HubAccess, budget_bytes: int, keep: set[str]) -> list[str]:
    """Delete the least recently used models of the Hugging Face cache until it fits the budget.

    Models in `keep` (loaded, or downloading) are never deleted; nor is
    anything in HFBOT_MODEL_DIR, which belongs to the operator. Returns the
    ids deleted (blocking: disk).
    """
    try:
        cache = scan_cache_dir(access.cache_dir)
    except CacheNotFound:
        return []
    total = cache.size_on_disk
    deleted: list[str] = []
    for repo in sorted(cache.repos, key=lambda repo: repo.last_accessed):
        if total <= budget_bytes:
            break
        if repo.repo_type != "model" or hub_form(repo.repo_id) in keep:
            continue
        shutil.rmtree(repo.repo_path, ignore_errors=True)
        total -= repo.size_on_disk
        deleted.append(repo.repo_id)
        log.info("deleted %s from the model cache (disk budget)", repo.repo_id)
    return deleted
