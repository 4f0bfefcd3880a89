"""The first use of a Hub model is announced and its download shown, not met with silence."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from bot.hub.downloads import DownloadPlan, ModelDownloads
from tests.support.harness import RunningBot

HUB_ID = "acme/tiny-sentiment"
MIB = 2**20


def pretend_the_default_is_on_the_hub(bot: RunningBot, fetched: list[str]) -> asyncio.Event:
    """Vetting says the model lives on the Hub; the 'download' reports progress, then finishes."""
    local = bot.settings.default_models["sentiment"]
    vetter = bot.services.vetter
    real_vet = vetter.vet
    release = asyncio.Event()

    async def vet(task: str, model_id: str) -> Any:
        vetted = await real_vet(task, local)
        plan = DownloadPlan(HUB_ID, "0" * 40, ("config.json", "model.safetensors"))
        return dataclasses.replace(vetted, model_id=HUB_ID, origin="hub", plan=plan)

    async def fetch(plan: DownloadPlan, progress: Any, *, access: Any, executor: Any) -> Path:
        fetched.append(plan.model_id)
        for done in (0, 4 * MIB):
            if progress is not None:
                progress(done, 10 * MIB)
        await release.wait()
        if progress is not None:
            progress(10 * MIB, 10 * MIB)
        return Path(local)

    vetter.vet = vet  # type: ignore[method-assign]
    bot.services.downloads = ModelDownloads(vetter.access, fetch=fetch)
    return release


async def test_first_use_shows_one_status_message_and_concurrent_requests_share_the_download(
    bot: RunningBot,
) -> None:
    fetched: list[str] = []
    release = pretend_the_default_is_on_the_hub(bot, fetched)
    alice, bob = bot.person("Alice"), bot.person("Bob")
    first = bot.emu.send_message(alice, bot.emu.private_chat(alice), "/sentiment lovely")
    [status] = await bot.emu.wait_for("sendMessage", timeout=30)
    assert (
        status.result["text"]
        == f"Downloading {HUB_ID} for its first use here; this can take a minute…"
    )
    second = bot.emu.send_message(bob, bot.emu.private_chat(bob), "/sentiment lovely too")
    await bot.emu.wait_until(lambda: bot.services.downloads.in_progress(HUB_ID))
    release.set()
    answers = await bot.emu.wait_for(
        "sendMessage",
        lambda c: (
            c.result["reply_to_message"]["message_id"]
            in (first["message_id"], second["message_id"])
            and c.result["text"].splitlines()[0] in ("POSITIVE", "NEGATIVE")
        ),
        count=2,
        since=0,
        timeout=60,
    )
    assert len(answers) == 2
    assert fetched == [HUB_ID], "one download for both requests"
    edits = bot.emu.edits(alice.id, status.result["message_id"])
    assert edits[-1] == f"Downloading {HUB_ID}: 10.0 MiB / 10.0 MiB (100%)"
    status_messages = [
        m for m in bot.emu.sent_messages(bob.id) if m["text"].startswith("Downloading")
    ]
    assert status_messages == [], "the second asker waits quietly for the same download"
