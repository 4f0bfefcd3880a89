"""`hfbot models fetch <id>…`: models onto disk ahead of an offline start, with progress bars.

Each model is described from the Hub first, so what is fetched is planned as
for a chat download (one pinned revision, the files loading reads, each
capped), then written into HFBOT_MODEL_DIR when set, else the Hugging Face cache.
"""

from __future__ import annotations

import asyncio
import html
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from bot.config import Settings
from bot.errors import UserFacingError
from bot.hub.check import UNREACHABLE_EXIT, unreachable, unreachable_line
from bot.hub.downloads import Progress, fetch_model, plan_download
from bot.hub.hub_access import HubAccess
from bot.hub.vetting import ModelRuleLike, ModelVetter
from bot.i18n import DEFAULT_LANGUAGE, t


class _NoRules:
    """Fetching is the operator's own act: the admins' allow/deny lists do not apply."""

    async def all(self) -> Sequence[ModelRuleLike]:
        return []


async def prefetch(
    vetter: ModelVetter, settings: Settings, model_id: str, progress: Progress
) -> Path:
    facts = await vetter.describe(model_id)
    max_bytes = settings.max_model_size_mb * 2**20 if settings.max_model_size_mb else None
    plan = plan_download(facts, max_bytes)
    return await fetch_model(plan, progress, access=vetter.access, into_model_dir=True)


def fetch_command(ids: list[str], settings: Settings, access: HubAccess | None = None) -> int:
    """One progress bar per model on stderr; `<id>\\t<folder>` per fetched model on stdout
    (for scripts); 1 if any failed, 2 (one line) when the source cannot be reached."""
    vetter = ModelVetter(settings, _NoRules(), access=access or HubAccess.from_settings(settings))
    why = unreachable(vetter.access, ids[0]) if ids else None
    if why is not None:
        print(unreachable_line(vetter.access, why), file=sys.stderr)
        return UNREACHABLE_EXIT
    failed = 0
    for model_id in ids:
        with tqdm(desc=model_id, unit="B", unit_scale=True, file=sys.stderr) as bar:

            def show(done: int, total: int, bar: tqdm = bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            try:
                folder = asyncio.run(prefetch(vetter, settings, model_id, show))
            except UserFacingError as error:
                failed += 1
                reason = html.unescape(t(DEFAULT_LANGUAGE, error.key, error.values))
                bar.write(f"{model_id}: not fetched: {reason}", file=sys.stderr)
                continue
        print(f"{model_id}\t{folder}")
    return 1 if failed else 0
