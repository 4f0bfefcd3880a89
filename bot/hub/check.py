"""`hfbot models check` and `hfbot models fetch --defaults`: every model the bot offers, asked of
its source before going live.

The registry's notes say what public records showed when they were written;
this asks the Hub (or the mirror in HF_ENDPOINT, or ModelScope) itself. Each
model the bot offers (every task's default, every `/translate xx:` target,
every operator override in HFBOT_DEFAULT_MODELS) is vetted exactly as a chat
command would vet it, and one row says whether it would be accepted, from
which commit (main, or the Hub's conversion PR), and how much it weighs. The
totals say what `fetch --defaults` downloads and the memory the set needs
against the pool's budget, so an operator can prepare a machine, or an
air-gapped one, and knows before the first user what would be refused.
"""

from __future__ import annotations

import asyncio
import html
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TextIO

import httpx2
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError
from tqdm.auto import tqdm

from bot.config import Settings
from bot.errors import UserFacingError
from bot.hub import modelscope
from bot.hub.downloads import DownloadPlan, downloaded_folder, fetch_model
from bot.hub.facts import describe_bytes
from bot.hub.hub_access import HubAccess, hub_form
from bot.hub.vetting import ModelRuleLike, ModelVetter, VettedModel
from bot.i18n import DEFAULT_LANGUAGE, t
from bot.tasks import SPEECH_VOICES, TASKS, TRANSLATION_TARGETS, VISION_CHAT_MODEL

Kind = Literal["default", "override", "target"]

# Memory a model takes beyond its float32 weights once it runs: activations, tokenizer,
# ONNX Runtime's arena (measured on the bot's CPU defaults: 10% to 30%).
RUNTIME_OVERHEAD = 0.25
UNREACHABLE_EXIT = 2


class _NoRules:
    """Checking and fetching are the operator's own acts: the admins' lists do not apply."""

    async def all(self) -> Sequence[ModelRuleLike]:
        return []


@dataclass(frozen=True)
class Offered:
    """One model the bot offers, and why: a task's default, an override, a translation target."""

    kind: Kind
    task: str
    label: str
    model_id: str


@dataclass(frozen=True)
class CheckRow:
    offered: Offered
    vetted: VettedModel | None = None
    refusal: str | None = None

    @property
    def accepted(self) -> bool:
        return self.vetted is not None

    @property
    def commit(self) -> str:
        """Where its files come from: `main@0123abcd…`, `PR#3@…`, `modelscope@master`."""
        if self.vetted is None:
            return "-"
        plan = self.vetted.plan
        if plan is None or plan.revision is None:
            return "local"
        pr = self.vetted.conversion_pr
        where = f"PR#{pr}" if pr else ("main" if plan.source == "hub" else plan.source)
        return f"{where}@{plan.revision[:12]}"

    @property
    def weights_bytes(self) -> int:
        return (self.vetted.weights_bytes or 0) if self.vetted else 0

    @property
    def download_bytes(self) -> int:
        plan = self.vetted.plan if self.vetted else None
        return (plan.total_bytes or 0) if plan else 0

    @property
    def ram_bytes(self) -> int:
        """Float32 weights (how the CPU runs them) plus the runtime's share."""
        if self.vetted is None:
            return 0
        weights = (
            self.vetted.num_parameters * 4
            if self.vetted.num_parameters
            else self.vetted.weights_bytes or 0
        )
        return int(weights * (1 + RUNTIME_OVERHEAD))


def offered_models(settings: Settings) -> list[Offered]:
    """Every model the bot offers, once per (task, model): defaults, overrides, then targets."""
    found: list[Offered] = []
    for spec in TASKS.values():
        found.append(Offered("default", spec.name, spec.name, spec.default_model))
        override = settings.default_models.get(spec.name) or settings.default_models.get(
            spec.pipeline_task
        )
        if override and hub_form(override) != hub_form(spec.default_model):
            found.append(Offered("override", spec.name, spec.name, override))
    default = hub_form(TASKS["translate"].default_model)
    for lang, model_id in TRANSLATION_TARGETS.items():
        if hub_form(model_id) != default:
            found.append(Offered("target", "translate", f"translate {lang}:", model_id))
    voice = hub_form(TASKS["say"].default_model)
    for lang, model_id in SPEECH_VOICES.items():
        if hub_form(model_id) != voice:
            found.append(Offered("target", "say", f"say ({lang})", model_id))
    found.append(Offered("target", "chat", "chat (photos)", VISION_CHAT_MODEL))
    return found


async def check_models(vetter: ModelVetter, offered: Sequence[Offered]) -> list[CheckRow]:
    """Vet each offered model as a chat command would (a few at a time)."""
    limit = asyncio.Semaphore(4)

    async def one(item: Offered) -> CheckRow:
        async with limit:
            try:
                return CheckRow(item, vetted=await vetter.vet(item.task, item.model_id))
            except UserFacingError as error:
                return CheckRow(item, refusal=_reason(error))

    return list(await asyncio.gather(*(one(item) for item in offered)))


def _reason(error: UserFacingError) -> str:
    return html.unescape(t(DEFAULT_LANGUAGE, error.key, error.values))


def unreachable(access: HubAccess, model_id: str) -> str | None:
    """Why the model source cannot be asked now (blocking: network), or None when it answers.

    Any answer counts, a "not found" included: only a source that does not
    answer (or offline mode) stops a check.
    """
    where = access.describe_source()
    if access.source == "modelscope":
        try:
            modelscope.describe(model_id, access.modelscope)
        except modelscope.ModelScopeUnreachable as error:
            return f"cannot reach {where} ({_first_line(error)})"
        except modelscope.ModelScopeMissing:
            return None
        return None
    if access.offline:
        return f"HF_HUB_OFFLINE is set, so {where} is not asked"
    try:
        access.api().model_info(model_id, timeout=10)
    except RepositoryNotFoundError:
        return None
    except (httpx2.TransportError, OfflineModeIsEnabled) as error:
        return f"cannot reach {where} ({_first_line(error)})"
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status is None or status >= 500:
            return f"{where} is not answering (HTTP {status})"
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:120] if text else type(error).__name__


def unreachable_line(access: HubAccess, why: str) -> str:
    hint = (
        "set HFBOT_MODELSCOPE_ENDPOINT, or HFBOT_MODEL_SOURCE=hub"
        if access.source == "modelscope"
        else "set HF_ENDPOINT to a Hub mirror, or HFBOT_MODEL_SOURCE=modelscope"
    )
    return f"hfbot: {why}; models need the network to be checked or fetched ({hint})"


def print_rows(
    rows: Sequence[CheckRow], settings: Settings, budget: int | None, out: TextIO
) -> None:
    """One row per model, then what downloading all of them takes and the memory they need."""
    width = max(len(row.offered.label) for row in rows)
    model_width = max(len(row.offered.model_id) for row in rows)
    print(
        f"{'kind':<8}  {'command':<{width}}  {'model':<{model_width}}  verdict   "
        f"{'commit':<22}  {'weights':>12}",
        file=out,
    )
    for row in rows:
        offered = row.offered
        head = f"{offered.kind:<8}  {offered.label:<{width}}  {offered.model_id:<{model_width}}"
        if row.accepted:
            print(
                f"{head}  accepted  {row.commit:<22}  {describe_bytes(row.weights_bytes):>12}",
                file=out,
            )
        else:
            print(f"{head}  refused   {row.refusal}", file=out)
    accepted = _unique([row for row in rows if row.accepted])
    refused = [row for row in rows if not row.accepted]
    total = sum(row.download_bytes for row in accepted)
    print(
        f"\n{len(accepted)} models to download, {describe_bytes(total)} in all"
        f"{f'; {len(refused)} refused' if refused else ''}.",
        file=out,
    )
    defaults = _unique([row for row in rows if row.accepted and row.offered.kind != "target"])
    ram = sum(row.ram_bytes for row in defaults)
    every = sum(row.ram_bytes for row in accepted)
    print(
        f"Memory, estimated (float32 weights + {RUNTIME_OVERHEAD:.0%}): "
        f"{describe_bytes(ram)} with every command's model loaded, "
        f"{describe_bytes(every)} with every translation target too.",
        file=out,
    )
    if budget is None:
        print("Memory budget: off (HFBOT_POOL_MEMORY_BUDGET_MB=off).", file=out)
    else:
        fits = "all of them fit" if every <= budget else "models will take turns in memory"
        print(
            f"Memory budget: {describe_bytes(budget)} (HFBOT_POOL_MEMORY_BUDGET_MB="
            f"{settings.pool_memory_budget_mb}): {fits}.",
            file=out,
        )


def _unique(rows: Sequence[CheckRow]) -> list[CheckRow]:
    """One row per download (a model serving two tasks is fetched and loaded once)."""
    seen: dict[tuple[str, str | None], CheckRow] = {}
    for row in rows:
        plan = row.vetted.plan if row.vetted else None
        key = (hub_form(row.offered.model_id), plan.revision if plan else None)
        seen.setdefault(key, row)
    return list(seen.values())


def _vetter(settings: Settings, access: HubAccess | None) -> ModelVetter:
    return ModelVetter(settings, _NoRules(), access=access or HubAccess.from_settings(settings))


def check_command(settings: Settings, budget: int | None, access: HubAccess | None = None) -> int:
    """Rows on stdout, with the memory estimate against `budget` (the pool's, in bytes);
    2 when the source cannot be asked, 1 when a default or override would be refused, else 0
    (a refused translation target is reported, not fatal)."""
    vetter = _vetter(settings, access)
    offered = offered_models(settings)
    why = unreachable(vetter.access, offered[0].model_id)
    if why is not None:
        print(unreachable_line(vetter.access, why), file=sys.stderr)
        return UNREACHABLE_EXIT
    print(f"Models from {vetter.access.describe_source()}:\n", file=sys.stdout)
    rows = asyncio.run(check_models(vetter, offered))
    print_rows(rows, settings, budget, sys.stdout)
    return 1 if any(not row.accepted and row.offered.kind != "target" for row in rows) else 0


def fetch_defaults_command(settings: Settings, access: HubAccess | None = None) -> int:
    """Download every accepted model the bot offers, under one progress bar with the total.

    Models already on disk are counted as done; a download cut short resumes
    where it stopped when the command runs again (both sources keep partial
    files). 2 when the source cannot be asked, 1 when any model was refused
    or failed, else 0.
    """
    vetter = _vetter(settings, access)
    offered = offered_models(settings)
    why = unreachable(vetter.access, offered[0].model_id)
    if why is not None:
        print(unreachable_line(vetter.access, why), file=sys.stderr)
        return UNREACHABLE_EXIT
    rows = asyncio.run(check_models(vetter, offered))
    failed = 0
    for row in rows:
        if not row.accepted:
            failed += 1
            print(f"{row.offered.model_id}: not fetched: {row.refusal}", file=sys.stderr)
    plans = [row.vetted.plan for row in _unique(rows) if row.vetted and row.vetted.plan]
    return 1 if asyncio.run(_fetch_all(plans, vetter.access)) or failed else 0


async def _fetch_all(plans: Sequence[DownloadPlan], access: HubAccess) -> int:
    """Fetch plans one after the other under one bar; returns how many failed."""
    failed = 0
    total = sum(plan.total_bytes or 0 for plan in plans)
    with tqdm(desc="models", total=total, unit="B", unit_scale=True, file=sys.stderr) as bar:
        base = 0
        for plan in plans:
            size = plan.total_bytes or 0
            folder = await asyncio.to_thread(downloaded_folder, plan, access)
            if folder is None:
                bar.set_postfix_str(plan.model_id)

                def show(done: int, _total: int, start: int = base, size: int = size) -> None:
                    bar.update(max(0, start + min(done, size) - bar.n))

                try:
                    folder = await fetch_model(plan, show, access=access)
                except UserFacingError as error:
                    failed += 1
                    bar.write(f"{plan.model_id}: not fetched: {_reason(error)}", file=sys.stderr)
                    base += size
                    bar.update(max(0, base - bar.n))
                    continue
            base += size
            bar.update(max(0, base - bar.n))
            print(f"{plan.model_id}\t{folder}")
    return failed
