"""What /imagine and /say answer with: a picture or a voice note, as files ready to send.

The runners in `bot/engine` make them; the formatters here write their
captions; the handlers send the bytes as they are (sendPhoto, sendVoice).
Nothing here knows about Telegram's API or about torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, repr=False)
class Picture:
    """A generated picture as PNG, and what makes it again: the same prompt, seed, size
    and steps on the same model draw the same picture."""

    png: bytes
    seed: int
    width: int
    height: int
    steps: int

    def __repr__(self) -> str:
        return f"Picture({self.width}x{self.height}, seed {self.seed}, {len(self.png)} bytes)"


@dataclass(frozen=True, repr=False)
class VoiceNote:
    """Speech as Telegram plays voice notes: OGG/Opus, mono, 48 kHz; `seconds` is what
    sendVoice's `duration` wants (rounded up there)."""

    ogg: bytes
    seconds: float

    def __repr__(self) -> str:
        return f"VoiceNote({self.seconds:.1f} s, {len(self.ogg)} bytes)"
