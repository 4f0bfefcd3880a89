"""Vetting a model id before it is ever loaded, and finding models a user may pick.

A model id comes from a user, so nothing is loaded until `ModelVetter.vet` has
checked, from metadata only, that the model exists and can be read with this
bot's token, fits the command's task, ships safetensors weights, stays under
the size caps and needs no code of its own (`trust_remote_code` is never set).
The admins' allow/deny rules are applied first, without touching the Hub.

When a model's `main` ships only pickle weights, vetting looks for the Hub's
own safetensors conversion, as transformers' auto-conversion does: the open
pull request its conversion bot (SFconvertbot) opened under its usual title.
If that pull request still converts the weights `main` has now (same LFS
hashes) and its files pass every check, its commit is what gets pinned,
downloaded and loaded.

Facts about a model are cached for `vet_cache_ttl_s`, refusals included, so
the hot path of a chat command makes no Hub call; the caches hold at most
`max_cached_models` models each, the least recently used forgotten first, so
users naming model after model cannot grow them without end. Every
huggingface_hub call runs in a thread: the event loop never waits on the network.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Generic, Literal, Protocol, TypeVar

import httpx2
from huggingface_hub import HfApi, constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub import try_to_load_from_cache as _cached_file
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import repo_folder_name
from huggingface_hub.utils import (
    build_hf_headers,
    get_session,
    hf_raise_for_status,
    validate_repo_id,
)

from bot.config import Settings
from bot.errors import (
    EngineTaskUnsupported,
    GatedModel,
    HubUnavailable,
    ModelDenied,
    ModelNotAllowed,
    RemoteModelUnknown,
    RemoteTaskUnsupported,
    StoreUnavailable,
    UnknownModel,
    UserFacingError,
)
from bot.hub import modelscope
from bot.hub.downloads import DownloadPlan, plan_download
from bot.hub.facts import (
    PICKLE_WEIGHTS,
    ModelFacts,
    SizeCaps,
    facts_from_directory,
    facts_from_hub_info,
    refusal_for,
    with_pipeline,
)
from bot.hub.hub_access import (
    MODEL_MARKERS,
    HubAccess,
    holds_model,
    hub_form,
    is_path_like,
    model_folders,
    model_keys,
    rule_keys,
)
from bot.hub.pipelines import PIPELINE_INDEX, PipelineIndex
from bot.tasks import (
    SPEECH_VOICES,
    TASKS,
    TRANSLATION_TARGETS,
    VISION_CHAT_MODEL,
    TaskSpec,
    get_task,
    voice_model,
)

logger = logging.getLogger(__name__)

RuleKind = Literal["allow", "deny"]
Origin = Literal["hub", "hub-cache", "model-dir", "path", "remote"]

# Failures that mean "the Hub cannot answer now", as opposed to "the Hub said no".
_UNREACHABLE = (httpx2.TransportError, OfflineModeIsEnabled)

# How the Hub's conversion bot signs its pull requests (transformers' safetensors_conversion
# looks for the same two).
CONVERSION_BOT = "SFconvertbot"
CONVERSION_TITLE = "Adding `safetensors` variant of this model"


class ModelRuleLike(Protocol):
    @property
    def model_id(self) -> str: ...

    @property
    def rule(self) -> RuleKind: ...


class RemoteCatalogue(Protocol):
    """What the vetter needs of the remote engines: what each one serves."""

    async def served_models(self, name: str) -> frozenset[str]: ...

    def serves(self, name: str, task: str) -> bool: ...


class ModelRuleSource(Protocol):
    """What the vetter needs from the store: the admins' allow/deny rules."""

    async def all(self) -> Sequence[ModelRuleLike]: ...


@dataclass(frozen=True)
class RuleBook:
    """The admins' allow and deny rules, matched on every spelling of a model id.

    `written` keeps each rule as the admin typed it (for listing); `by_key`
    maps each key the rule matches (see `rule_keys`) to it, deny winning.
    """

    written: dict[str, RuleKind] = field(default_factory=dict)
    by_key: dict[str, RuleKind] = field(default_factory=dict)

    @classmethod
    def build(cls, rules: Sequence[ModelRuleLike]) -> RuleBook:
        """Blocking: rules naming folders are resolved on disk."""
        written = {rule.model_id: rule.rule for rule in rules}
        by_key: dict[str, RuleKind] = {}
        for model_id, kind in written.items():
            for key in rule_keys(model_id):
                by_key[key] = "deny" if "deny" in (kind, by_key.get(key)) else kind
        return cls(written, by_key)

    def verdict(self, keys: frozenset[str]) -> RuleKind | None:
        found = {self.by_key[key] for key in keys if key in self.by_key}
        return "deny" if "deny" in found else "allow" if found else None

    def denies(self, model_id: str) -> bool:
        return self.verdict(model_keys(model_id)) == "deny"


@dataclass(frozen=True)
class VettedModel:
    """A model that passed vetting for one task.

    `source` is the folder to load it from, or for a Hub model not on disk yet
    its id, with `plan` saying which files of which revision to fetch first.
    """

    model_id: str
    task: str
    source: str
    origin: Origin
    pipeline_tag: str | None
    architectures: tuple[str, ...]
    num_parameters: int | None
    weights_bytes: int | None
    plan: DownloadPlan | None = None
    conversion_pr: int | None = None


@dataclass(frozen=True)
class ModelSummary:
    """One line of `/models`: a model a user could pick for a task."""

    model_id: str
    pipeline_tag: str | None
    origin: Literal["hub", "default", "allowed", "model-dir"]
    downloads: int | None = None
    likes: int | None = None


@dataclass(frozen=True)
class _Location:
    origin: Literal["hub", "model-dir", "path"]
    path: Path | None = None


@dataclass
class _CacheEntry:
    expires: float
    facts: ModelFacts | None = None
    refusal: UserFacingError | None = None


K = TypeVar("K")
V = TypeVar("V")
# Models each vetting cache remembers at most.
MAX_CACHED_MODELS = 4096


class LruCache(Generic[K, V]):
    """A mapping that forgets its least recently used entry past `max_entries`."""

    def __init__(self, max_entries: int) -> None:
        self._entries: OrderedDict[K, V] = OrderedDict()
        self.max_entries = max_entries

    def get(self, key: K) -> V | None:
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def __setitem__(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class ModelVetter:
    """Decides whether a model id may be loaded for a task, with the admins' rules applied."""

    def __init__(
        self,
        settings: Settings,
        rules: ModelRuleSource,
        *,
        access: HubAccess | None = None,
        clock: Callable[[], float] = time.monotonic,
        hub_timeout_s: float = 10.0,
        remote: RemoteCatalogue | None = None,
        max_cached_models: int = MAX_CACHED_MODELS,
    ) -> None:
        """`hub_timeout_s` bounds each Hub call: a chat command waits on it."""
        self._settings = settings
        self._hub_timeout_s = hub_timeout_s
        self._rules_source = rules
        self._remote = remote
        self._access = access or HubAccess.from_settings(settings)
        self._clock = clock
        self._caps = SizeCaps(
            max_params=settings.max_model_params,
            max_bytes=settings.max_model_size_mb * 2**20 if settings.max_model_size_mb else None,
        )
        self._facts_cache: LruCache[str, _CacheEntry] = LruCache(max_cached_models)
        self._verdicts: LruCache[tuple[str, str], tuple[float, VettedModel]] = LruCache(
            max_cached_models
        )
        self._in_flight: dict[str, asyncio.Future[ModelFacts]] = {}
        self._rules: RuleBook | None = None
        self._last_rules = RuleBook()

    @property
    def access(self) -> HubAccess:
        return self._access

    def rules_changed(self) -> None:
        """Forget the cached allow/deny rules; the next call reads them from the store."""
        self._rules = None
        self._verdicts.clear()

    def forget(self, model_id: str | None = None) -> None:
        """Drop cached vetting facts for one model, or for all (e.g. after a token change)."""
        self._verdicts.clear()
        if model_id is None:
            self._facts_cache.clear()
        else:
            self._facts_cache.pop(model_id.strip())

    async def vet(self, task: str, model_id: str) -> VettedModel:
        """Refuse with the first reason this model cannot serve `task`, else describe it."""
        spec = get_task(task)
        model_id = model_id.strip()
        rules = await self._rule_map()
        if rules.verdict(model_keys(model_id)) == "deny":
            raise ModelDenied(model=model_id)
        verdict = self._verdicts.get((spec.name, model_id))
        if verdict is not None and verdict[0] > self._clock():
            return verdict[1]
        remote = self._settings.remote_model(model_id)
        if remote is not None:
            return self._remember(spec, await self._vet_remote(spec, model_id, *remote, rules))
        location = await asyncio.to_thread(self._locate, model_id)
        keys = model_keys(model_id, location.path)
        if rules.verdict(keys) == "deny":
            raise ModelDenied(model=model_id)
        if not self._is_allowed(keys, location, rules):
            raise ModelNotAllowed(model=model_id, task=spec.name)
        await asyncio.to_thread(_holds_a_model, model_id, location)
        facts = await self._facts(model_id, location)
        refusal = refusal_for(facts, spec, self._caps)
        if refusal is not None:
            raise refusal
        from_hub = facts.local_path is None
        vetted = VettedModel(
            model_id=model_id,
            task=spec.pipeline_task,
            source=model_id if from_hub else str(facts.local_path),
            origin=_origin(location, facts),
            pipeline_tag=facts.pipeline_tag,
            architectures=facts.architectures,
            num_parameters=facts.num_parameters,
            weights_bytes=facts.weights_bytes,
            plan=plan_download(facts, self._caps.max_bytes) if from_hub else None,
            conversion_pr=facts.conversion_pr,
        )
        return self._remember(spec, vetted)

    def _remember(self, spec: TaskSpec, vetted: VettedModel) -> VettedModel:
        """The request path asks again for every message: answer from memory, no disk or thread."""
        expires = self._clock() + self._settings.vet_cache_ttl_s
        self._verdicts[(spec.name, vetted.model_id)] = (expires, vetted)
        return vetted

    async def _vet_remote(
        self, spec: TaskSpec, model_id: str, engine: str, name: str, rules: RuleBook
    ) -> VettedModel:
        """A model on an operator's engine: the policy must allow it, as any other model
        (an allow or deny rule may name `engine:model` or the model alone; a default is
        allowed), and the engine must say it serves it.

        What else the engine serves is never told: its model names are the operator's
        (a model served from a folder is named by its path).
        """
        if not spec.remote or self._remote is None:
            raise RemoteTaskUnsupported(task=spec.name, model=model_id)
        if not self._remote.serves(engine, spec.pipeline_task):
            raise EngineTaskUnsupported(engine=engine, task=spec.name)
        keys = model_keys(model_id) | model_keys(name)
        verdict = rules.verdict(keys)
        if verdict == "deny":
            raise ModelDenied(model=model_id)
        if verdict != "allow" and not model_keys(model_id) & self.offered_models():
            raise ModelNotAllowed(model=model_id, task=spec.name)
        if name not in await self._remote.served_models(engine):
            raise RemoteModelUnknown(engine=engine, model=name)
        return VettedModel(
            model_id=model_id,
            task=spec.pipeline_task,
            source=model_id,
            origin="remote",
            pipeline_tag=None,
            architectures=(),
            num_parameters=None,
            weights_bytes=None,
        )

    async def describe(self, model_id: str) -> ModelFacts:
        """What the Hub (or the disk) says of a model, for any task, policy aside."""
        model_id = model_id.strip()
        location = await asyncio.to_thread(self._locate, model_id)
        await asyncio.to_thread(_holds_a_model, model_id, location)
        return await self._facts(model_id, location)

    async def search_models(
        self, task: str, query: str | None = None, limit: int = 10
    ) -> list[ModelSummary]:
        """Models a user may pick for a task, most downloaded first.

        The Hub is searched only when any vetted Hub model is allowed: listing
        models the policy would refuse wastes the user's time. Otherwise, or
        when the Hub cannot be reached, the allowed catalogue is listed.
        """
        spec = get_task(task)
        rules = await self._rule_map()
        searchable = self._access.source == "hub" and not self._access.offline
        if self._settings.allow_any_hub_model and searchable:
            try:
                found = await asyncio.to_thread(
                    self._search_hub, spec, query, limit + len(rules.written)
                )
            except (*_UNREACHABLE, HfHubHTTPError) as error:
                logger.warning(
                    "Hub search failed (%s); listing allowed models", type(error).__name__
                )
            else:
                return [item for item in found if not rules.denies(item.model_id)][:limit]
        catalogue = [
            *self._allowed_entries(spec, rules),
            *await asyncio.to_thread(self._model_dir_entries, spec),
        ]
        needle = (query or "").strip().lower()
        seen: set[str] = set()
        found = []
        for item in catalogue:
            if item.model_id in seen or rules.denies(item.model_id):
                continue
            seen.add(item.model_id)
            if needle in item.model_id.lower():
                found.append(item)
        return found[:limit]

    def default_models(self, spec: TaskSpec) -> list[str]:
        """The registry's default for a task, and the operator's override when set."""
        override = self._settings.default_models.get(
            spec.pipeline_task
        ) or self._settings.default_models.get(spec.name)
        return [model for model in (override, spec.default_model) if model]

    def offered_models(self) -> frozenset[str]:
        """Hub forms of every model the bot itself proposes: each task's default, the
        `/translate xx:` targets, each language's voice and the model suggested to see
        pictures. These always pass the policy, so what the bot offers works."""
        offered = [model for spec in TASKS.values() for model in self.default_models(spec)]
        offered += TRANSLATION_TARGETS.values()
        offered += [voice_model(lang, self._settings.default_models) for lang in SPEECH_VOICES]
        offered += [*SPEECH_VOICES.values(), VISION_CHAT_MODEL]
        return frozenset(hub_form(model) for model in offered)

    async def _rule_map(self) -> RuleBook:
        """The admins' rules; while the store is down, the last rules read (or none yet).

        With the store down, requests run on the operator's default models
        (users' choices cannot be read either), so vetting goes on rather than
        refusing every request.
        """
        if self._rules is None:
            try:
                rules = await self._rules_source.all()
            except StoreUnavailable:
                logger.warning("model rules unavailable; using the last known rules")
                return self._last_rules
            book = await asyncio.to_thread(RuleBook.build, rules)
            self._rules = self._last_rules = book
        return self._rules

    def _is_allowed(self, keys: frozenset[str], location: _Location, rules: RuleBook) -> bool:
        if location.origin == "model-dir" or rules.verdict(keys) == "allow":
            return True
        if keys & self.offered_models():
            return True
        return location.origin == "hub" and self._settings.allow_any_hub_model

    def _locate(self, model_id: str) -> _Location:
        """Blocking (disk): model_dir first, then explicit paths, then a Hub repo id.

        An explicit path is resolved, not looked into (`_holds_a_model`, once the
        policy allows it): a refusal must not tell a user what is on the machine.
        """
        if (path := self._access.model_dir_path(model_id)) is not None:
            return _Location("model-dir", path)
        if is_path_like(model_id):
            try:
                path = Path(model_id).expanduser().resolve()
            except (RuntimeError, OSError):
                path = Path(model_id)
            return _Location("path", path)
        try:
            validate_repo_id(model_id)
        except HFValidationError:
            raise UnknownModel(model=model_id) from None
        return _Location("hub")

    async def _facts(self, model_id: str, location: _Location) -> ModelFacts:
        entry = self._facts_cache.get(model_id)
        if entry is not None and entry.expires > self._clock():
            if entry.refusal is not None:
                raise entry.refusal
            assert entry.facts is not None
            return entry.facts
        future = self._in_flight.get(model_id)
        if future is None:
            future = asyncio.ensure_future(self._read_facts(model_id, location))
            self._in_flight[model_id] = future
            future.add_done_callback(lambda done: self._settle(model_id, done))
        return await asyncio.shield(future)

    def _settle(self, model_id: str, done: asyncio.Future[ModelFacts]) -> None:
        """Cache what the Hub said (yes or no), but not that it could not be reached."""
        self._in_flight.pop(model_id, None)
        if done.cancelled():
            return
        expires = self._clock() + self._settings.vet_cache_ttl_s
        error = done.exception()
        if error is None:
            self._facts_cache[model_id] = _CacheEntry(expires, facts=done.result())
        elif isinstance(error, UserFacingError) and not isinstance(error, HubUnavailable):
            self._facts_cache[model_id] = _CacheEntry(expires, refusal=error)

    async def _read_facts(self, model_id: str, location: _Location) -> ModelFacts:
        if location.path is not None:
            return await asyncio.to_thread(facts_from_directory, location.path, model_id)
        if self._access.source == "modelscope":
            return await self._modelscope_facts(model_id)
        if self._access.offline:
            return await self._facts_from_hub_cache(model_id)
        try:
            info = await asyncio.to_thread(
                self._access.api().model_info,
                model_id,
                files_metadata=True,
                timeout=self._hub_timeout_s,
            )
        except GatedRepoError:
            raise GatedModel(model=model_id, has_token=self._access.token is not None) from None
        except (RepositoryNotFoundError, RevisionNotFoundError):
            raise UnknownModel(model=model_id) from None
        except (*_UNREACHABLE, HfHubHTTPError) as error:
            logger.warning("Hub unreachable vetting %s (%s)", model_id, type(error).__name__)
            return await self._facts_from_hub_cache(model_id)
        if info.gated:
            await self._check_gated_access(model_id)
        facts = facts_from_hub_info(info)
        if facts.is_pipeline:
            index = await self._pipeline_index(model_id, info.sha)
            facts = await asyncio.to_thread(with_pipeline, facts, index)
        elif not facts.loaded_weights and facts.other_weight_files:
            converted = await self._conversion_facts(facts)
            if converted is not None:
                return converted
        return facts

    async def _modelscope_facts(self, model_id: str) -> ModelFacts:
        """Facts from ModelScope (`HFBOT_MODEL_SOURCE=modelscope`), refused as the Hub's are."""
        try:
            return await asyncio.to_thread(modelscope.describe, model_id, self._access.modelscope)
        except modelscope.ModelScopeMissing:
            raise UnknownModel(model=model_id) from None
        except modelscope.ModelScopeUnreachable as error:
            logger.warning("ModelScope unreachable vetting %s (%s)", model_id, error)
            raise HubUnavailable(model=model_id) from None

    async def _conversion_facts(self, main: ModelFacts) -> ModelFacts | None:
        """Facts at the Hub's safetensors conversion PR of this model, if one converts the
        weights `main` has now; None when there is none (or the Hub will not say)."""
        api = self._access.api()
        try:
            # get_repo_discussions takes no timeout: a chat command must not wait longer.
            found = await asyncio.wait_for(
                asyncio.to_thread(_conversion_prs, api, main.model_id), self._hub_timeout_s
            )
            for number in found:
                info = await asyncio.to_thread(
                    api.model_info,
                    main.model_id,
                    revision=f"refs/pr/{number}",
                    files_metadata=True,
                    timeout=self._hub_timeout_s,
                )
                facts = dataclasses.replace(facts_from_hub_info(info), conversion_pr=number)
                if facts.loaded_weights and _converts(facts, main):
                    logger.info(
                        "%s: using safetensors from conversion PR #%d (%s)",
                        main.model_id,
                        number,
                        facts.revision,
                    )
                    return facts
        except (*_UNREACHABLE, HfHubHTTPError, TimeoutError) as error:
            logger.warning(
                "conversion PR of %s not readable (%s)", main.model_id, type(error).__name__
            )
        return None

    async def _pipeline_index(self, model_id: str, revision: str | None) -> PipelineIndex:
        """A diffusers pipeline's model_index.json at the revision vetted: its components are
        in no answer of the Hub's API, so this one small file is read."""
        try:
            return await asyncio.to_thread(self._read_pipeline_index, model_id, revision)
        except GatedRepoError:
            raise GatedModel(model=model_id, has_token=self._access.token is not None) from None
        except (*_UNREACHABLE, HfHubHTTPError, OSError) as error:
            logger.warning("model_index.json of %s unreadable (%s)", model_id, type(error).__name__)
            raise HubUnavailable(model=model_id) from None
        except ValueError:
            raise UnknownModel(model=model_id) from None

    async def _check_gated_access(self, model_id: str) -> None:
        """The Hub describes gated repos to anyone; only a file request shows access."""
        if self._access.token is None:
            raise GatedModel(model=model_id, has_token=False)
        url = hf_hub_url(model_id, "config.json", endpoint=self._access.endpoint)
        try:
            await asyncio.to_thread(
                get_hf_file_metadata,
                url,
                token=self._access.token_arg(),
                timeout=self._hub_timeout_s,
            )
        except GatedRepoError:
            raise GatedModel(model=model_id, has_token=True) from None
        except RemoteEntryNotFoundError:
            return

    async def _facts_from_hub_cache(self, model_id: str) -> ModelFacts:
        snapshot = await asyncio.to_thread(self._cached_snapshot, model_id)
        if snapshot is None:
            raise HubUnavailable(model=model_id)
        return await asyncio.to_thread(facts_from_directory, snapshot, model_id)

    def _read_pipeline_index(self, model_id: str, revision: str | None) -> PipelineIndex:
        """Blocking (network, disk): fetch model_index.json into the cache and parse it."""
        path = hf_hub_download(
            model_id,
            PIPELINE_INDEX,
            revision=revision,
            endpoint=self._access.endpoint,
            token=self._access.token_arg(),
            cache_dir=self._access.cache_dir,
            etag_timeout=self._hub_timeout_s,
        )
        return PipelineIndex.parse(Path(path).read_text(encoding="utf-8"))

    def _cached_snapshot(self, model_id: str) -> Path | None:
        """The cached snapshot `main` points at, else the newest one.

        The bot downloads pinned commits, which leave no `main` ref behind;
        offline, the latest of them is what was vetted last.
        """
        for marker in MODEL_MARKERS:
            cached = _cached_file(model_id, marker, cache_dir=self._access.cache_dir)
            if isinstance(cached, str):
                return Path(cached).parent
        repo = Path(self._access.cache_dir or constants.HF_HUB_CACHE) / repo_folder_name(
            repo_id=model_id, repo_type="model"
        )
        configs = sorted(
            (found for marker in MODEL_MARKERS for found in repo.glob(f"snapshots/*/{marker}")),
            key=lambda path: path.stat().st_mtime,
        )
        return configs[-1].parent if configs else None

    def _search_hub(self, spec: TaskSpec, query: str | None, limit: int) -> list[ModelSummary]:
        """One `/api/models` request, as `HfApi.list_models` sends it but without its
        retries: on an outage those hold a thread and the reply for about 20 s."""
        params: dict[str, str | int] = {
            "pipeline_tag": spec.model_kind.tags[0],
            "sort": "downloads",
            "limit": limit,
        }
        if query:
            params["search"] = query
        response = get_session().get(
            f"{self._access.endpoint or constants.ENDPOINT}/api/models",
            params=params,
            headers=build_hf_headers(token=self._access.token_arg()),
            timeout=self._hub_timeout_s,
        )
        hf_raise_for_status(response)
        return [
            ModelSummary(
                model_id=item["id"],
                pipeline_tag=item.get("pipeline_tag"),
                origin="hub",
                downloads=item.get("downloads"),
                likes=item.get("likes"),
            )
            for item in response.json()[:limit]
        ]

    def _allowed_entries(self, spec: TaskSpec, rules: RuleBook) -> list[ModelSummary]:
        """Defaults, then allow-listed models not already known to misfit this task."""
        tag = spec.model_kind.tags[0]
        items = [ModelSummary(model, tag, "default") for model in self.default_models(spec)]
        for model_id, rule in rules.written.items():
            cached = self._facts_cache.get(model_id)
            facts = cached.facts if cached is not None else None
            fits = cached is None or (
                facts is not None and refusal_for(facts, spec, self._caps) is None
            )
            if rule == "allow" and fits:
                items.append(
                    ModelSummary(model_id, facts.pipeline_tag if facts else None, "allowed")
                )
        return items

    def _model_dir_entries(self, spec: TaskSpec) -> list[ModelSummary]:
        """Blocking (disk): models in model_dir (`<name>` or `<owner>/<name>`) that fit the task."""
        root = self._access.model_dir
        if root is None or not root.is_dir():
            return []
        entries = []
        for folder in model_folders(root):
            model_id = folder.relative_to(root).as_posix()
            facts = facts_from_directory(folder, model_id)
            if refusal_for(facts, spec, self._caps) is None:
                entries.append(ModelSummary(model_id, facts.pipeline_tag, "model-dir"))
        return entries


def _holds_a_model(model_id: str, location: _Location) -> None:
    """Blocking (disk): an explicit path must hold a model."""
    if location.origin == "path" and (location.path is None or not holds_model(location.path)):
        raise UnknownModel(model=model_id)


def _conversion_prs(api: HfApi, model_id: str) -> list[int]:
    """Blocking (network): numbers of the conversion bot's open pull requests, newest first."""
    found = api.get_repo_discussions(
        model_id,
        author=CONVERSION_BOT,
        discussion_type="pull_request",
        discussion_status="open",
    )
    return [
        pr.num
        for pr in found
        if pr.is_pull_request
        and pr.status == "open"
        and pr.author == CONVERSION_BOT
        and pr.title == CONVERSION_TITLE
    ]


def _converts(converted: ModelFacts, main: ModelFacts) -> bool:
    """Whether a conversion PR was made from the weights `main` has now: every pickle weight
    file of main is in the PR with the same LFS hash (a retrained model makes the PR stale)."""
    weights = [
        name
        for name in main.other_weight_files
        if name in main.lfs_sha256 and any(fnmatch(name, p) for p in PICKLE_WEIGHTS)
    ]
    return bool(weights) and all(
        converted.lfs_sha256.get(name) == main.lfs_sha256[name] for name in weights
    )


def _origin(location: _Location, facts: ModelFacts) -> Origin:
    if location.origin != "hub":
        return location.origin
    return "hub-cache" if facts.local_path is not None else "hub"
