"""The Telegram side of deploy/smoke-image.sh: the project's Bot API emulator on a port of
this machine, and one person talking to the bot that runs in the container.

    .venv/bin/python deploy/smoke_chat.py PORT first   # /start, /sentiment, /set ...
    .venv/bin/python deploy/smoke_chat.py PORT again   # after a restart: /settings remembers

It waits for the bot's first long poll, says its lines one by one, prints each answer,
and exits 0 when every answer came and read as expected, 1 otherwise. The token the bot
must use is the emulator's (`bot.offline.emulator.DEFAULT_TOKEN`).
"""

from __future__ import annotations

import asyncio
import sys

from bot.offline.emulator import BotApiEmulator

# What the person says in each phase, and a piece of text the answer must hold.
PHASES: dict[str, list[tuple[str, str]]] = {
    "first": [
        ("/start", "/sentiment"),
        ("/sentiment I love this image, it works", "POSITIVE|NEGATIVE"),
        ("/set generate temperature 0.3", "0.3"),
    ],
    "again": [("/settings generate", "0.3")],
}
WAIT_FOR_BOT_S = 300
WAIT_FOR_ANSWER_S = 180


def answer(emu: BotApiEmulator, chat_id: int, since: int, expected: str) -> str | None:
    """The bot's first message after the first `since` that holds one of the `|`-separated
    pieces, as it now reads (a status line is edited into the answer itself)."""
    for message in emu.sent_messages(chat_id)[since:]:
        text = str(message.get("text", ""))
        if any(piece in text for piece in expected.split("|")):
            return text
    return None


async def talk(port: int, phase: str) -> bool:
    async with BotApiEmulator(port=port) as emu:
        print(f"emulator on {emu.url}; waiting for the bot's first long poll", flush=True)
        await emu.wait_until(lambda: emu.long_polls_waiting > 0, timeout=WAIT_FOR_BOT_S)
        person = emu.create_user("Smoke", username="smoke")
        chat = emu.private_chat(person)
        for line, expected in PHASES[phase]:
            since = len(emu.sent_messages(chat.id))
            emu.send_message(person, chat, line)
            try:
                await emu.wait_until(
                    lambda: answer(emu, chat.id, since, expected) is not None,  # noqa: B023
                    timeout=WAIT_FOR_ANSWER_S,
                )
            except TimeoutError:
                got = [m.get("text", "") for m in emu.sent_messages(chat.id)[since:]]
                print(f"BAD {line!r} -> {got!r}, wanted {expected!r}", flush=True)
                return False
            text = answer(emu, chat.id, since, expected) or ""
            print(f"ok  {line!r} -> {text.splitlines()[0][:100]!r}", flush=True)
        return True


def main() -> int:
    port, phase = int(sys.argv[1]), sys.argv[2]
    try:
        return 0 if asyncio.run(talk(port, phase)) else 1
    except TimeoutError:
        print("BAD no answer in time", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
