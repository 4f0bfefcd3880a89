"""Spoken answers: a conversation's answer read aloud as a voice note, for people who asked.

`/set voice_replies on` makes every answer of the chat model in a private chat
arrive as a voice note as well, under the text it reads (the lifecycle's
after-answer step for conversations, `speak_answer`). The voice is the one /say
would use: the person's own choice, else the one for the answer's language.
With `auto_transcribe` on too, a conversation runs voice in, voice out, all on
local models.

The voice note is part of the conversation turn it reads: it runs inside that
request's admission (its in-flight place and its one count against the quota)
and is not logged as a request of its own. A voice that cannot read the
answer says so in one line; the text answer stands either way.
"""

from __future__ import annotations

import logging

from telegram import Message

from bot.delivery.replies import reply_voice
from bot.errors import StoreUnavailable, UserFacingError
from bot.tasks import OPTIONS, TASKS, VoiceNote
from handlers.request.model_call import TaskRequest, Usage, prepare_call, run_call
from handlers.request.turn import Turn

log = logging.getLogger(__name__)

SAY = TASKS["say"]


async def wants_voice_replies(turn: Turn) -> bool:
    """Whether this person asked for spoken answers; only in a private chat, where a voice
    note costs no one else's attention (or a group's message budget)."""
    if not turn.in_private:
        return False
    try:
        options = await turn.services.store.preferences.get_options(turn.owner_id)
    except StoreUnavailable:
        return False
    return bool(OPTIONS["voice_replies"].coerce(options.get("voice_replies", False)))


async def speak_answer(turn: Turn, answer: str, shown: Message | None) -> None:
    """Read a shown answer aloud as a voice note replying to it, when the person asked for
    that. A text longer than one voice note reads its first `max_speech_chars`."""
    if not answer.strip() or not await wants_voice_replies(turn):
        return
    text = answer[: turn.services.settings.max_speech_chars]
    request = TaskRequest(text=text, inputs=text)
    try:
        call = await prepare_call(turn, SAY, request, Usage())
        voice = await run_call(turn, SAY, call, request, Usage())
    except UserFacingError as error:
        log.info("answer not read aloud: %s", error.key)
        reason = turn.t(error.key, **error.values)
        await (shown or turn.message).reply_html(
            f"{turn.t('voice.not_spoken')} {reason}", do_quote=True
        )
        return
    assert isinstance(voice, VoiceNote), "the text-to-speech runner answers with a VoiceNote"
    await reply_voice(shown or turn.message, voice.ogg, voice.seconds)
