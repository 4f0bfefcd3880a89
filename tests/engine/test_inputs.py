"""Decoding photos and recordings from bytes, and every limit a file can break."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bot.engine.inputs import (
    TELEGRAM_DOWNLOAD_LIMIT_BYTES,
    AudioBytes,
    ImageBytes,
    MediaLimits,
    decode_audio,
    decode_image,
    decode_input,
    pick_photo_size,
)
from bot.engine.runners import MediaDecodingRunner
from bot.errors import (
    AudioTooLong,
    FileTooLarge,
    ImageTooLarge,
    ImageTooMuchMemory,
    UnreadableMedia,
)
from bot.offline.media_samples import image_bytes, sound_bytes

LIMITS = MediaLimits(max_file_bytes=1_000_000, max_image_pixels=2_000_000, max_audio_seconds=5)


@dataclass(frozen=True)
class Size:
    width: int
    height: int
    file_size: int | None


def test_a_jpeg_decodes_to_an_rgb_image_of_its_size() -> None:
    image = decode_image(image_bytes(64, 48), max_pixels=10_000)
    assert image.mode == "RGB"
    assert image.size == (64, 48)


def test_a_png_with_transparency_decodes_to_rgb() -> None:
    image = decode_image(image_bytes(20, 10, image_format="PNG"), max_pixels=10_000)
    assert (image.mode, image.size) == ("RGB", (20, 10))


def test_exif_orientation_turns_a_sideways_photo_upright() -> None:
    image = decode_image(image_bytes(64, 48, orientation=6), max_pixels=10_000)
    assert image.size == (48, 64)
    red, blue = image.getpixel((24, 5)), image.getpixel((24, 58))
    assert red[0] > 150 > red[2], "the left (red) half is on top once rotated clockwise"
    assert blue[2] > 150 > blue[0]


def test_an_image_over_the_pixel_cap_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLarge) as caught:
        decode_image(image_bytes(64, 48), max_pixels=64 * 48 - 1)
    assert caught.value.values == {"pixels": "3072 pixels", "limit": "3071 pixels"}


@pytest.mark.parametrize("image_format", ["PNG", "WEBP", "GIF", "BMP"])
def test_every_format_a_photo_can_be_decodes(image_format: str) -> None:
    image = decode_image(image_bytes(20, 10, image_format=image_format), max_pixels=10_000)
    assert image.size == (20, 10)


@pytest.mark.parametrize("image_format", ["TIFF", "ICO", "PPM", "TGA"])
def test_formats_no_photo_comes_in_are_never_parsed(image_format: str) -> None:
    """Pillow can read these; a hostile file must not reach their parsers."""
    with pytest.raises(UnreadableMedia):
        decode_image(image_bytes(20, 10, image_format=image_format), max_pixels=10_000)


@pytest.mark.parametrize("data", [b"", b"not an image at all", image_bytes()[:40]])
def test_garbage_or_a_truncated_image_is_unreadable(data: bytes) -> None:
    with pytest.raises(UnreadableMedia):
        decode_image(data, max_pixels=10_000)


@pytest.mark.parametrize(
    ("container", "codec", "rate"),
    [("ogg", "libopus", 48_000), ("mp3", "libmp3lame", 44_100), ("ipod", "aac", 44_100)],
)
def test_voice_notes_and_audio_files_decode_to_mono_at_the_models_rate(
    container: str, codec: str, rate: int
) -> None:
    samples = decode_audio(sound_bytes(2.0, container=container, codec=codec, rate=rate), 16_000, 5)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(samples.shape[0] - 32_000) < 1_000, "two seconds at 16 kHz"
    assert 0.3 < float(np.abs(samples).max()) < 1.01


def test_a_recording_longer_than_the_cap_is_refused() -> None:
    with pytest.raises(AudioTooLong) as caught:
        decode_audio(sound_bytes(3.0), 16_000, max_seconds=2)
    assert caught.value.values["limit"] == "2 s"


@pytest.mark.parametrize("data", [b"", b"RIFF....WAVEfmt garbage" * 10, sound_bytes(1.0)[:200]])
def test_garbage_or_a_truncated_recording_is_unreadable(data: bytes) -> None:
    with pytest.raises(UnreadableMedia):
        decode_audio(data, 16_000, max_seconds=5)


def test_an_image_file_is_not_a_recording() -> None:
    with pytest.raises(UnreadableMedia):
        decode_audio(image_bytes(), 16_000, max_seconds=5)


def test_pool_inputs_decode_to_what_pipelines_take() -> None:
    image = decode_input(ImageBytes(image_bytes(), 10_000))
    assert image.size == (64, 48)
    audio = decode_input(AudioBytes(sound_bytes(1.0), 5), sampling_rate=8_000)
    assert audio["sampling_rate"] == 8_000 and abs(audio["raw"].shape[0] - 8_000) < 500
    assert decode_input("plain text") == "plain text"


def test_pool_inputs_never_show_their_content_in_logs() -> None:
    assert repr(ImageBytes(b"secret", 1)) == "ImageBytes(6 bytes)"
    assert "secret" not in repr(AudioBytes(b"secret", 1))


def test_the_largest_photo_size_within_the_caps_is_chosen() -> None:
    sizes = [Size(90, 60, 2_000), Size(1280, 853, 900_000), Size(2560, 1706, 3_000_000)]
    assert pick_photo_size(sizes, LIMITS) == Size(1280, 853, 900_000)


def test_a_photo_size_over_the_pixel_cap_gives_way_to_a_smaller_one() -> None:
    sizes = [Size(90, 60, 2_000), Size(1280, 853, 900_000)]
    limits = MediaLimits(10**7, max_image_pixels=100_000, max_audio_seconds=5)
    assert pick_photo_size(sizes, limits) == Size(90, 60, 2_000)


def test_a_photo_whose_every_size_is_too_large_is_refused() -> None:
    with pytest.raises(FileTooLarge):
        pick_photo_size([Size(2560, 1706, 3_000_000)], LIMITS)
    with pytest.raises(ImageTooLarge):
        pick_photo_size([Size(2560, 1706, 900_000)], MediaLimits(10**7, 1_000, 5))


def test_the_file_cap_never_exceeds_telegrams_download_limit() -> None:
    assert MediaLimits.from_megabytes(50, 1, 1).max_file_bytes == TELEGRAM_DOWNLOAD_LIMIT_BYTES
    assert MediaLimits.from_megabytes(1.5, 1, 1).max_file_bytes == 1_500_000


def test_file_size_and_duration_checks_say_the_limit() -> None:
    with pytest.raises(FileTooLarge) as caught:
        LIMITS.check_file_size(2_500_000)
    assert caught.value.values == {"size": "2.5 MB", "limit": "1.0 MB"}
    with pytest.raises(AudioTooLong):
        LIMITS.check_duration(6)
    LIMITS.check_file_size(None)
    LIMITS.check_duration(None)


class RecordingPipeline:
    """Stands in for a speech pipeline: records each call's clip lengths, answers with them."""

    def __init__(self) -> None:
        self.model = None
        self.feature_extractor = type("Extractor", (), {"sampling_rate": 8_000})()
        self.calls: list[list[int]] = []

    def __call__(self, clips: list[dict[str, Any]], *, batch_size: int) -> list[dict[str, Any]]:
        lengths = [len(clip["raw"]) for clip in clips]
        self.calls.append(lengths)
        return [{"text": str(length)} for length in lengths]


def test_recordings_are_decoded_at_the_models_rate_and_batched_by_similar_length() -> None:
    fake = RecordingPipeline()
    runner = MediaDecodingRunner(fake)
    notes = [AudioBytes(sound_bytes(seconds), 10) for seconds in (4.0, 1.0, 4.2, 1.1)]
    results = runner(notes, batch_size=4)
    assert len(fake.calls) == 2, "the two short notes together, the two long ones together"
    assert all(max(call) <= 1.25 * min(call) for call in fake.calls)
    lengths = [int(result["text"]) for result in results]
    assert [round(length / 8_000, 1) for length in lengths] == [4.0, 1.0, 4.2, 1.1]


def test_decoded_memory_is_bounded_from_the_header_a_big_jpeg_decodes_smaller() -> None:
    big = image_bytes(2000, 1000)  # a JPEG: 6 MB as RGB
    image = decode_image(big, max_pixels=10**8, max_bytes=2_000_000)
    assert image.size == (1000, 500), "its decoder's own 1/2 scale fits 1.5 MB"

    png = io.BytesIO()
    Image.new("RGBA", (2000, 1000)).save(png, format="PNG")
    with pytest.raises(ImageTooMuchMemory) as refused:
        decode_image(png.getvalue(), max_pixels=10**8, max_bytes=2_000_000)
    assert refused.value.values == {"size": "8.0 MB", "limit": "2.0 MB"}
