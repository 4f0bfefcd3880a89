"""Texts read aloud: a VITS voice behind the pool, answering with Telegram voice notes.

VITS (MMS-TTS and the checkpoints trained like it) turns characters into a
waveform in one forward pass, so a batch is one call. Each text is cut into
sentences first (a VITS voice is trained on sentence-length clips and drifts
on a paragraph), every sentence of every request in the batch is spoken in
groups of similar length (a batch pads each one to its longest, and on a CPU
a padded second costs what a spoken one does), and each request's sentences
are joined with a short pause.

A voice reads the alphabet of its vocabulary. Where that is pinyin with tone
marks and the text is written in Chinese characters (the Mandarin voice), the
characters are written in pinyin first, with pypinyin's tone sandhi. Nothing
of a text in the voice's alphabet is refused (`UnspeakableText`), not read
as silence.

The answer is what Telegram's sendVoice plays as a voice note: OGG/Opus,
mono, 48 kHz, encoded with PyAV (`encode_voice_note`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, ClassVar

import av
import numpy as np
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase, VitsModel
from transformers.utils import is_phonemizer_available

from bot.engine.load_options import LoadOptions
from bot.errors import UnspeakableText
from bot.tasks import VoiceNote
from bot.tasks.voices import is_cjk

VOICE_RATE = 48_000
VOICE_BITRATE = 32_000
# Opus codes 20 ms frames; PyAV's encoder takes them whole.
_OPUS_FRAME = 960
_TONE_MARKS = frozenset("āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ")
_CJK_PUNCTUATION = str.maketrans("，。！？；：、（）“”‘’", ",.!?;:,()\"\"''")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？;；\n])\s*")


def encode_voice_note(samples: np.ndarray, rate: int) -> bytes:
    """Mono float samples at `rate` as an OGG/Opus voice note at 48 kHz."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="ogg") as muxer:
        stream = muxer.add_stream("libopus", rate=VOICE_RATE, layout="mono")
        stream.bit_rate = VOICE_BITRATE
        resampler = av.AudioResampler(format="flt", layout="mono", rate=VOICE_RATE)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1),
            format="flt",
            layout="mono",
        )
        frame.sample_rate = rate
        frame.pts = 0
        frame.time_base = Fraction(1, rate)
        for resampled in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(resampled):
                muxer.mux(packet)
        for packet in stream.encode(None):
            muxer.mux(packet)
    return out.getvalue()


def sentences(text: str, limit: int) -> list[str]:
    """The text in pieces of at most `limit` characters, cut after sentence ends where it
    can be, else after commas or spaces, else anywhere."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        rest = sentence.strip()
        while len(rest) > limit:
            cut = max(rest.rfind(mark, 0, limit) for mark in (",", "，", " "))
            cut = cut + 1 if cut > 0 else limit
            pieces.append(rest[:cut].strip())
            rest = rest[cut:].strip()
        if rest:
            pieces.append(rest)
    return pieces


class SpeechRunner:
    """A VITS voice: texts in, `VoiceNote`s out."""

    # Characters per spoken piece: a few seconds of speech, the length VITS voices train on.
    PIECE_CHARS: ClassVar[int] = 200
    PAUSE_S: ClassVar[float] = 0.3
    SIMILAR_LENGTH: ClassVar[float] = 1.25
    MAX_PIECES_PER_CALL: ClassVar[int] = 16

    def __init__(self, model: Any, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.sampling_rate = int(model.config.sampling_rate)
        vocabulary = "".join(tokenizer.get_vocab())
        self._writes_pinyin = bool(_TONE_MARKS & set(vocabulary)) and not any(
            is_cjk(char) for char in vocabulary
        )
        self._speaker = 0 if int(getattr(model.config, "num_speakers", 1)) > 1 else None

    @classmethod
    def load(cls, task: str, model_id: str, options: LoadOptions) -> SpeechRunner:
        tokenizer = AutoTokenizer.from_pretrained(model_id, token=options.token)
        if getattr(tokenizer, "phonemize", False) and not is_phonemizer_available():
            raise RuntimeError(
                f"{model_id} reads phonemes: it needs the phonemizer package and espeak-ng"
            )
        model = VitsModel.from_pretrained(
            model_id, dtype=options.dtype, token=options.token, use_safetensors=True
        )
        return cls(model.to(options.device).eval(), tokenizer)

    def __call__(self, inputs: list[str], *, batch_size: int = 1, **params: Any) -> list[Any]:
        pieces = [self._pieces(text) for text in inputs]
        flat = [(owner, piece) for owner, own in enumerate(pieces) for piece in own]
        spoken = self._speak([ids for _, ids in flat])
        waves: list[list[np.ndarray]] = [[] for _ in inputs]
        for (owner, _), wave in zip(flat, spoken, strict=True):
            waves[owner].append(wave)
        return [self._voice_note(own) for own in waves]

    def _pieces(self, text: str) -> list[list[int]]:
        """Token ids of each sentence the voice can pronounce; none at all is refused."""
        if self._writes_pinyin and any(is_cjk(char) for char in text):
            text = _pinyin(text)
        pad = self.tokenizer.pad_token_id
        found = []
        for piece in sentences(text.translate(_CJK_PUNCTUATION), self.PIECE_CHARS):
            ids = list(self.tokenizer(piece)["input_ids"])
            if any(token != pad for token in ids):
                found.append(ids)
        if not found:
            raise UnspeakableText()
        return found

    def _speak(self, pieces: Sequence[list[int]]) -> list[np.ndarray]:
        """Each piece's waveform, pieces of similar length spoken together."""
        waves: list[np.ndarray] = [np.zeros(0, dtype=np.float32)] * len(pieces)
        for group in self._similar_lengths(pieces):
            batch = self.tokenizer.pad(
                {"input_ids": [pieces[index] for index in group]}, return_tensors="pt"
            ).to(self.model.device)
            with torch.inference_mode():
                output = self.model(**batch, speaker_id=self._speaker)
            audio = output.waveform.float().cpu().numpy()
            for row, index in enumerate(group):
                waves[index] = audio[row, : int(output.sequence_lengths[row])]
        return waves

    def _similar_lengths(self, pieces: Sequence[list[int]]) -> list[list[int]]:
        groups: list[list[int]] = []
        for index in sorted(range(len(pieces)), key=lambda i: len(pieces[i])):
            if (
                groups
                and len(groups[-1]) < self.MAX_PIECES_PER_CALL
                and len(pieces[index]) <= len(pieces[groups[-1][0]]) * self.SIMILAR_LENGTH
            ):
                groups[-1].append(index)
            else:
                groups.append([index])
        return groups

    def _voice_note(self, waves: list[np.ndarray]) -> VoiceNote:
        pause = np.zeros(int(self.PAUSE_S * self.sampling_rate), dtype=np.float32)
        joined = [part for wave in waves for part in (pause, wave)][1:]
        samples = np.concatenate(joined) if joined else np.zeros(0, dtype=np.float32)
        if samples.size == 0:
            raise UnspeakableText()
        return VoiceNote(
            encode_voice_note(samples, self.sampling_rate), samples.size / self.sampling_rate
        )


def _pinyin(text: str) -> str:
    """Chinese characters as pinyin with tone marks, other text as it was."""
    from pypinyin import Style, lazy_pinyin

    return "".join(lazy_pinyin(text, style=Style.TONE, tone_sandhi=True))
