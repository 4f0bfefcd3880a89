"""The edit pacer shares one pace per chat and does not keep every chat it ever saw."""

from __future__ import annotations

from bot.delivery import pacing as edit_pacer


async def test_the_edit_pacer_forgets_chats_whose_slot_has_passed() -> None:
    now = [0.0]
    pacer = edit_pacer.EditPacer(clock=lambda: now[0])
    for chat_id in range(edit_pacer.MAX_TRACKED_CHATS):
        await pacer.slot(chat_id)
    now[0] = 10.0
    await pacer.slot(-1)
    assert list(pacer._next) == [-1], "only the chat just paced is remembered"
