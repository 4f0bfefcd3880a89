"""First use of a Hub model in a chat: one status message, edited as the download goes."""

from __future__ import annotations

import html

from bot.hub import VettedModel
from bot.model_fetch import ThrottledStatus
from handlers.replies import edit_html
from handlers.turn import Turn


async def ensure_downloaded(turn: Turn, vetted: VettedModel) -> None:
    """Download a Hub model not on disk yet, telling the person instead of staying silent.

    Local folders and models already in the cache need nothing. A request that
    arrives while another one downloads the same model waits for that download.
    """
    downloads = turn.services.downloads
    if vetted.origin != "hub" or not await downloads.needed(vetted.model_id):
        return
    if downloads.in_progress(vetted.model_id):
        await downloads.fetch(vetted.model_id)
        return
    status = await turn.reply(turn.t("download.started", model=vetted.model_id))

    async def show(text: str) -> None:
        await edit_html(status, html.escape(text))

    progress = ThrottledStatus(vetted.model_id, show)
    await downloads.fetch(vetted.model_id, progress)
    await progress.finish()
