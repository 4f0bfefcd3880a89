"""ModelScope as the source of models (`HFBOT_MODEL_SOURCE=modelscope`), through the `modelscope`
package.

For people who cannot reach huggingface.co: the facts vetting needs are read
from ModelScope's file list and the model's small files (config, tokenizer
config, card), then the planned files are fetched with `snapshot_download`
at the vetted revision, into a folder of the bot's own. ModelScope's file API
names no commit, so the pin is the revision and every file's size and sha256
from the listing vetting read: after the download the files on disk are
vetted again by the same rules (safetensors only, no remote code, sizes as
vetted) before anything loads. Defaults whose ModelScope id differs from the
Hub's are mapped by `bot.tasks.MODELSCOPE_IDS`.

Every function here blocks (network, disk): callers run them in threads.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bot.hub.facts import WEIGHTS_INDEX, ModelFacts, facts_from_directory, indexed_shards
from bot.tasks import MODELSCOPE_IDS

Progress = Callable[[int, int], None]

DEFAULT_REVISION = "master"
# Read before the weights, to judge a model: what it is, its tokenizer, its card's task.
_SMALL_FILES = ("config.json", "tokenizer_config.json", "README.md", WEIGHTS_INDEX)
_SMALL_FILE_CAP_BYTES = 16 * 2**20
# ModelScope's `tasks:` card entries, as the Hub's pipeline tags.
_TASKS = {
    "text-classification": "text-classification",
    "sentiment-classification": "text-classification",
    "token-classification": "token-classification",
    "named-entity-recognition": "token-classification",
    "fill-mask": "fill-mask",
    "zero-shot-classification": "zero-shot-classification",
    "question-answering": "question-answering",
    "summarization": "summarization",
    "translation": "translation",
    "text-generation": "text-generation",
    "image-classification": "image-classification",
    "image-captioning": "image-to-text",
    "image-to-text": "image-to-text",
    "zero-shot-image-classification": "zero-shot-image-classification",
    "auto-speech-recognition": "automatic-speech-recognition",
    "automatic-speech-recognition": "automatic-speech-recognition",
}


class ModelScopeMissing(LookupError):
    """ModelScope has no such model (or none this token may read)."""


class ModelScopeUnreachable(ConnectionError):
    """ModelScope could not be asked: network down, server error."""


def modelscope_id(model_id: str) -> str:
    """The id a model has on ModelScope: the registry's table, else its Hub id."""
    return MODELSCOPE_IDS.get(model_id, model_id)


@dataclasses.dataclass(frozen=True)
class ModelScopeAccess:
    """Where ModelScope is and where its models go on disk."""

    endpoint: str | None
    token: str | None
    folder: Path

    def snapshot_folder(self, repo_id: str, revision: str) -> Path:
        return self.folder / repo_id / revision


def _api(access: ModelScopeAccess) -> Any:
    from modelscope.hub.api import HubApi

    return HubApi(endpoint=access.endpoint, token=access.token)


def _call(action: Callable[[], Any]) -> Any:
    """Run a modelscope call, its failures as the two the vetter tells apart."""
    import requests
    from modelscope_hub.errors import (
        AuthenticationError,
        HubError,
        NotExistError,
        PermissionDeniedError,
    )

    try:
        return action()
    except (NotExistError, AuthenticationError, PermissionDeniedError) as error:
        raise ModelScopeMissing(str(error)) from error
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status in (401, 403, 404) or (status is None and "not exist" in str(error).lower()):
            raise ModelScopeMissing(str(error)) from error
        raise ModelScopeUnreachable(str(error)) from error
    except (HubError, requests.RequestException, OSError) as error:
        raise ModelScopeUnreachable(str(error)) from error


def describe(
    model_id: str, access: ModelScopeAccess, revision: str = DEFAULT_REVISION
) -> ModelFacts:
    """Facts about a ModelScope model from its file list and small files; no weight is read."""
    repo_id = modelscope_id(model_id)
    listing = _call(lambda: _api(access).get_model_files(repo_id, revision=revision))
    sizes = {str(item["Path"]): int(item.get("Size") or 0) for item in listing}
    small = [
        name for name in _SMALL_FILES if name in sizes and sizes[name] <= _SMALL_FILE_CAP_BYTES
    ]
    if "config.json" not in small:
        raise ModelScopeMissing(f"{repo_id} has no config.json")
    folder = access.folder / ".vetting" / repo_id / revision
    _call(lambda: _snapshot(access, repo_id, revision, small, folder, None))
    read = facts_from_directory(folder, model_id)
    files = tuple(sorted(sizes))
    return dataclasses.replace(
        read,
        files=files,
        pipeline_tag=read.pipeline_tag or _card_task(folder / "README.md"),
        file_sizes=sizes,
        num_parameters=None,
        revision=revision,
        shards=indexed_shards(folder / WEIGHTS_INDEX, list(files)),
        source="modelscope",
        local_path=None,
    )


def _card_task(card: Path) -> str | None:
    """The Hub pipeline tag for a ModelScope card's first `tasks:` entry."""
    from huggingface_hub.repocard import metadata_load

    if not card.is_file():
        return None
    tasks = (metadata_load(card) or {}).get("tasks") or []
    first = tasks[0] if isinstance(tasks, list) and tasks else tasks
    return _TASKS.get(str(first)) if first else None


def _snapshot(
    access: ModelScopeAccess,
    repo_id: str,
    revision: str,
    files: list[str],
    folder: Path,
    report: Progress | None,
) -> Path:
    from modelscope import snapshot_download

    callbacks = [_progress_class(report)] if report is not None else None
    done = snapshot_download(
        repo_id,
        revision=revision,
        local_dir=str(folder),
        allow_patterns=files,
        endpoint=access.endpoint,
        token=access.token,
        progress_callbacks=callbacks,
    )
    return Path(done)


def fetch(
    model_id: str,
    revision: str,
    files: tuple[str, ...],
    access: ModelScopeAccess,
    report: Progress | None = None,
    into: Path | None = None,
) -> Path:
    """Download the planned files of one revision (resumable: files already whole are kept)."""
    repo_id = modelscope_id(model_id)
    folder = into or access.snapshot_folder(repo_id, revision)
    fetched: Path = _call(lambda: _snapshot(access, repo_id, revision, list(files), folder, report))
    return fetched


def downloaded(
    model_id: str, revision: str, sizes: Mapping[str, int], access: ModelScopeAccess
) -> Path | None:
    """The folder of this revision when every planned file is there at its vetted size."""
    folder = access.snapshot_folder(modelscope_id(model_id), revision)
    for name, size in sizes.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != size:
            return None
    return folder if sizes else None


def _progress_class(report: Progress) -> type:
    """A modelscope ProgressCallback that sums bytes over every file into `report`."""
    from modelscope.hub.callback import ProgressCallback

    lock = threading.Lock()
    totals = {"done": 0, "total": 0}

    class ByteProgress(ProgressCallback):
        def __init__(self, filename: str, file_size: int) -> None:
            super().__init__(filename, file_size)
            with lock:
                totals["total"] += max(0, file_size)
                report(totals["done"], totals["total"])

        def update(self, size: int) -> None:
            with lock:
                totals["done"] += size
                report(totals["done"], totals["total"])

    return ByteProgress
