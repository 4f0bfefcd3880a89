"""What a model call answers with, one type per kind of result.

The pool reads each pipeline's own output (dicts and lists, as transformers
returns them, or as a remote engine's reply is shaped like them) into one of
these with the row's reader (`bot.tasks.readers`), so everything above the
engine reads fields, not keys: the formatters write replies from them, the
lifecycle asks whether an engine cut its answer short, conversations how many
old turns were dropped. Nothing here knows about Telegram's API or about torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scored:
    """A label (or a word for a gap) and how sure the model is of it, 0 to 1."""

    label: str
    score: float


@dataclass(frozen=True)
class Ranking:
    """Labels best first: sentiment, zero-shot labels, what a photo shows."""

    items: tuple[Scored, ...]

    @property
    def best(self) -> Scored:
        return self.items[0]


@dataclass(frozen=True)
class Entity:
    """A named entity as a span of the text it was found in; `kind` without its B-/I- tag."""

    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class Entities:
    """The entities found, in the order they appear in the text, never overlapping."""

    found: tuple[Entity, ...]


@dataclass(frozen=True)
class Completions:
    """A gap filled: the best sentence in full, and each candidate for the gap with its score."""

    sequence: str
    candidates: tuple[Scored, ...]


@dataclass(frozen=True)
class Answer:
    """An answer taken from the context, and how sure the model is of it."""

    text: str
    score: float


@dataclass(frozen=True)
class Texts:
    """Text a model wrote: generated sequences, a summary, a translation, a caption.

    `cut` says a remote engine kept writing past the longest answer the bot reads.
    """

    texts: tuple[str, ...]
    cut: bool = False


@dataclass(frozen=True)
class ChatReply:
    """A conversation's next answer, and how many of its oldest turns did not fit the model."""

    text: str
    dropped_turns: int = 0
    cut: bool = False


@dataclass(frozen=True)
class Transcript:
    """The words heard in a voice note or a sound file (empty when there were none)."""

    text: str


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


Output = (
    Ranking
    | Entities
    | Completions
    | Answer
    | Texts
    | ChatReply
    | Transcript
    | Picture
    | VoiceNote
)


def cut_short(output: Output) -> bool:
    """Whether the engine's answer was cut at the longest reply the bot reads."""
    return isinstance(output, Texts | ChatReply) and output.cut
