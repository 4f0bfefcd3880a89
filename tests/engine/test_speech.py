"""/say's engine: voice notes Telegram plays (OGG/Opus, mono, 48 kHz) as long as the speech,
texts read sentence by sentence, the voice that reads the text's script, clear refusals."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import av
import pytest

from bot.config import Settings
from bot.engine.pool import PipelinePool
from bot.engine.runners import load_runner
from bot.engine.speech import SpeechRunner, encode_voice_note, sentences
from bot.errors import InputTooLong, UnspeakableText
from bot.offline.media_samples import tone
from bot.tasks import TASKS, VoiceNote

SAY = TASKS["say"]
TASK = SAY.pipeline_task


def heard(ogg: bytes) -> tuple[str, int, int, float]:
    """Codec, sample rate, channels and decoded seconds of a voice note, as a player hears it."""
    with av.open(io.BytesIO(ogg)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return (
            stream.codec_context.name,
            stream.rate,
            stream.codec_context.channels,
            samples / stream.rate,
        )


def test_a_voice_note_is_ogg_opus_mono_48_khz_and_plays_as_long_as_the_sound() -> None:
    ogg = encode_voice_note(tone(2.5, 16_000), 16_000)
    assert ogg.startswith(b"OggS")
    codec, rate, channels, seconds = heard(ogg)
    assert (codec, rate, channels) == ("opus", 48_000, 1)
    assert seconds == pytest.approx(2.5, abs=0.03)


async def test_each_text_of_a_batch_gets_its_own_voice_note_of_its_own_length(
    tiny_voice: Path,
) -> None:
    texts = ["Hello there.", "The quick brown fox jumps over the lazy dog, twice over."]
    async with PipelinePool(Settings(_env_file=None, pool_max_wait_ms=50)) as pool:
        notes = await asyncio.gather(*(pool.submit(TASK, str(tiny_voice), text) for text in texts))
        batches = dict(pool.metrics.batch_sizes)
    assert batches == {2: 1}, "both texts were spoken in one model call"
    for note in notes:
        assert isinstance(note, VoiceNote)
        codec, rate, _, seconds = heard(note.ogg)
        assert (codec, rate) == ("opus", 48_000)
        assert seconds == pytest.approx(note.seconds, abs=0.03)
    assert SAY.result.format(notes[0], texts[0]) == "", "a voice note needs no caption"


def test_a_long_text_is_read_sentence_by_sentence_with_a_pause_between(tiny_voice: Path) -> None:
    runner = load_runner(TASK, str(tiny_voice), device="cpu", dtype="float32")
    assert isinstance(runner, SpeechRunner)
    one = "A sentence of a few words."
    pieces = runner._pieces(" ".join([one] * 12))
    assert len(pieces) >= 2, "12 sentences are more than one piece of 200 characters"
    assert all(len(piece) <= 2 * (SpeechRunner.PIECE_CHARS + 1) for piece in pieces)
    [note] = runner([" ".join([one] * 12)], batch_size=1)
    assert note.seconds > SpeechRunner.PAUSE_S * (len(pieces) - 1)


def test_sentences_break_at_ends_then_commas_then_spaces() -> None:
    assert sentences("One. Two! 三。四？", 50) == ["One.", "Two!", "三。", "四？"]
    assert sentences("alpha beta, gamma delta", 12) == ["alpha beta,", "gamma delta"]
    assert sentences("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


async def test_a_text_the_voice_cannot_pronounce_is_refused_and_its_batch_mate_is_spoken(
    tiny_voice: Path,
) -> None:
    async with PipelinePool(Settings(_env_file=None, pool_max_wait_ms=50)) as pool:
        answers = await asyncio.gather(
            pool.submit(TASK, str(tiny_voice), "你好，世界"),
            pool.submit(TASK, str(tiny_voice), "Hello world"),
            return_exceptions=True,
        )
    assert isinstance(answers[0], UnspeakableText)
    assert isinstance(answers[1], VoiceNote)


def test_a_pinyin_voice_reads_chinese_characters(tiny_pinyin_voice: Path) -> None:
    runner = load_runner(TASK, str(tiny_pinyin_voice), device="cpu", dtype="float32")
    assert isinstance(runner, SpeechRunner)
    pad = runner.tokenizer.pad_token_id
    [ids] = runner._pieces("你好")
    read = runner.tokenizer.convert_ids_to_tokens([token for token in ids if token != pad])
    assert "".join(read) == "níhǎo", "written in pinyin, with tone sandhi"
    [note] = runner(["你好，世界。"], batch_size=1)
    assert isinstance(note, VoiceNote) and note.seconds > 0


def test_a_text_longer_than_a_voice_note_may_read_is_refused_before_queueing() -> None:
    check = SAY.work_check
    assert check is not None
    limits = Settings(_env_file=None, max_speech_chars=20)
    check({}, "x" * 20, limits)
    with pytest.raises(InputTooLong) as refused:
        check({}, "x" * 21, limits)
    assert refused.value.values == {"length": 21, "limit": 20}
