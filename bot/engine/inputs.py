"""Photos and sound from chat files: limits, and decoding bytes into what pipelines take.

A media command hands the pool the file's bytes wrapped with the limits that
apply (`ImageBytes`, `AudioBytes`); the runner decodes them in the pool's
executor (`decode_input`), so Pillow and PyAV never run on the event loop and
audio is resampled to the rate of the model that will hear it. Everything
here is a pure function of bytes and settings: no Telegram, no disk; a
user's file lives in memory only for as long as its request does.
"""

from __future__ import annotations

import base64
import io
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bot.errors import (
    AudioTooLong,
    FileTooLarge,
    ImageTooLarge,
    ImageTooMuchMemory,
    UnreadableMedia,
)

# What a photo can be. Pillow reads dozens of formats, each a parser that a
# hostile file can aim at; only these are ever opened.
PHOTO_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")

# Telegram's Bot API serves bots files of at most 20 MB (getFile).
TELEGRAM_DOWNLOAD_LIMIT_BYTES = 20 * 1000 * 1000
# Most memory one image may decode to (HFBOT_MAX_IMAGE_DECODE_MB's default).
IMAGE_DECODE_BYTES = 64 * 1000 * 1000
# The reductions a JPEG decoder offers for free (Pillow's `draft`).
_JPEG_SCALES = (2, 4, 8)


@dataclass(frozen=True)
class MediaLimits:
    """What the operator lets one file be (from Settings)."""

    max_file_bytes: int
    max_image_pixels: int
    max_audio_seconds: float
    max_image_bytes: int = IMAGE_DECODE_BYTES

    @classmethod
    def from_megabytes(
        cls,
        max_file_mb: float,
        max_image_pixels: int,
        max_audio_seconds: float,
        max_image_decode_mb: float = IMAGE_DECODE_BYTES / 1e6,
    ) -> MediaLimits:
        """Never above Telegram's own download limit, whatever the setting says."""
        cap = min(int(max_file_mb * 1000 * 1000), TELEGRAM_DOWNLOAD_LIMIT_BYTES)
        return cls(cap, max_image_pixels, max_audio_seconds, int(max_image_decode_mb * 1e6))

    def check_file_size(self, size: int | None) -> None:
        if size is not None and size > self.max_file_bytes:
            raise FileTooLarge(size=_megabytes(size), limit=_megabytes(self.max_file_bytes))

    def check_duration(self, seconds: float | None) -> None:
        if seconds is not None and seconds > self.max_audio_seconds:
            raise AudioTooLong(seconds=_seconds(seconds), limit=_seconds(self.max_audio_seconds))


@dataclass(frozen=True, repr=False)
class ImageBytes:
    """An image file as sent, and the most pixels and bytes it may decode to."""

    data: bytes
    max_pixels: int
    max_bytes: int = IMAGE_DECODE_BYTES

    def __repr__(self) -> str:
        return f"ImageBytes({len(self.data)} bytes)"


@dataclass(frozen=True, repr=False)
class AudioBytes:
    """A sound file (voice note, audio, video note) as sent, and the longest it may play."""

    data: bytes
    max_seconds: float

    def __repr__(self) -> str:
        return f"AudioBytes({len(self.data)} bytes)"


class SizedPhoto(Protocol):
    """One of the sizes Telegram offers for a photo (telegram.PhotoSize has these)."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def file_size(self) -> int | None: ...


P = TypeVar("P", bound=SizedPhoto)


def pick_photo_size(sizes: Sequence[P], limits: MediaLimits) -> P:
    """The largest size within both caps: a thumbnail throws away what a larger size shows."""
    if not sizes:
        raise UnreadableMedia()
    by_area = sorted(sizes, key=lambda size: size.width * size.height, reverse=True)
    small_enough = [s for s in by_area if (s.file_size or 0) <= limits.max_file_bytes]
    if not small_enough:
        limits.check_file_size(by_area[-1].file_size)
    few_pixels = [
        s
        for s in small_enough
        if s.width * s.height <= limits.max_image_pixels
        and s.width * s.height * 3 <= limits.max_image_bytes  # photos are RGB JPEGs
    ]
    if not few_pixels:
        smallest = small_enough[-1]
        raise ImageTooLarge(
            pixels=_megapixels(smallest.width * smallest.height),
            limit=_megapixels(limits.max_image_pixels),
        )
    return few_pixels[0]


def decode_image(data: bytes, max_pixels: int, max_bytes: int = IMAGE_DECODE_BYTES) -> Image.Image:
    """An RGB image, upright as the camera held it (EXIF orientation applied).

    Its size is checked from the header before any pixel is decoded, so a
    small file that expands to a huge bitmap costs nothing: at most
    `max_pixels`, and at most `max_bytes` decoded (pixels × channels × bytes a
    channel, `decoded_bytes`: a 16-bit RGBA PNG takes 8 bytes a pixel, any at least
    the 3 of its RGB copy).
    A JPEG over `max_bytes` is decoded smaller instead (1/2, 1/4 or 1/8, as its
    decoder offers), which a model reading a few hundred pixels never misses.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=PHOTO_FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    pixels=_megapixels(width * height), limit=_megapixels(max_pixels)
                )
            if decoded_bytes(image) > max_bytes and image.format == "JPEG":
                scale = next(
                    (s for s in _JPEG_SCALES if decoded_bytes(image, s) <= max_bytes),
                    _JPEG_SCALES[-1],
                )
                image.draft(None, (math.ceil(width / scale), math.ceil(height / scale)))
            if decoded_bytes(image) > max_bytes:
                raise ImageTooMuchMemory(
                    size=_megabytes(decoded_bytes(image)), limit=_megabytes(max_bytes)
                )
            image.load()
            upright = ImageOps.exif_transpose(image) or image
            return upright.convert("RGB")
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise UnreadableMedia() from error


def decoded_bytes(image: Image.Image, scale: int = 1) -> int:
    """What the image's pixels take once decoded (at 1/`scale` of its size), from its
    header alone: as the file stores them, or as the RGB a model gets, whichever is more
    (a 1-bit PNG of 25 MP is a few KB on the wire, and 75 MB as RGB)."""
    width, height = image.size
    mode = image.mode
    depth = 2 if mode.startswith("I;16") else 4 if mode in ("I", "F") else 1
    pixels = math.ceil(width / scale) * math.ceil(height / scale)
    return pixels * max(Image.getmodebands(mode) * depth, 3)


_MIME_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
}


def image_data_url(item: ImageBytes) -> str:
    """The file as a `data:` URL, as an engine's `image_url` content part takes a picture.

    Sent as it came (the engine decodes it), after the same checks a local model's
    picture passes: one of PHOTO_FORMATS, and within its pixel cap by its header.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(item.data), formats=PHOTO_FORMATS) as image:
                (width, height), found = image.size, image.format
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as error:
        raise UnreadableMedia() from error
    if width * height > item.max_pixels:
        raise ImageTooLarge(pixels=_megapixels(width * height), limit=_megapixels(item.max_pixels))
    mime = _MIME_TYPES.get(found or "", "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(item.data).decode('ascii')}"


def decode_audio(data: bytes, sampling_rate: int, max_seconds: float) -> np.ndarray:
    """Mono float32 samples at `sampling_rate`, from any container and codec FFmpeg reads.

    Stops and refuses as soon as the sound runs past `max_seconds`, whatever
    the container claimed, so a long file never decodes in full.
    """
    limit = math.ceil(max_seconds * sampling_rate)
    chunks: list[np.ndarray] = []
    decoded = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise UnreadableMedia()
            stream = container.streams.audio[0]
            if container.duration is not None:
                _check_seconds(container.duration / av.time_base, max_seconds)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)
            for frame in container.decode(stream):
                for chunk in _resampled(resampler, [frame]):
                    decoded += chunk.shape[0]
                    if decoded > limit:
                        _check_seconds(decoded / sampling_rate, max_seconds)
                    chunks.append(chunk)
            chunks.extend(_resampled(resampler, [None]))
    except (av.FFmpegError, OSError, ValueError, IndexError) as error:
        raise UnreadableMedia() from error
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    if samples.shape[0] > limit:
        _check_seconds(samples.shape[0] / sampling_rate, max_seconds)
    if samples.shape[0] == 0:
        raise UnreadableMedia()
    return samples


def _resampled(resampler: av.AudioResampler, frames: Iterable[Any]) -> list[np.ndarray]:
    """Flush with `None`; PyAV gives packed float frames as arrays of shape (1, n)."""
    out: list[np.ndarray] = []
    for frame in frames:
        out.extend(resampled.to_ndarray().reshape(-1) for resampled in resampler.resample(frame))
    return out


def decode_input(item: Any, sampling_rate: int | None = None) -> Any:
    """What a pipeline takes for one queued input; anything that is not media passes through."""
    if isinstance(item, ImageBytes):
        return decode_image(item.data, item.max_pixels, item.max_bytes)
    if isinstance(item, AudioBytes):
        if sampling_rate is None:
            raise ValueError("decoding audio needs the model's sampling rate")
        return {
            "raw": decode_audio(item.data, sampling_rate, item.max_seconds),
            "sampling_rate": sampling_rate,
        }
    return item


def _check_seconds(seconds: float, max_seconds: float) -> None:
    if seconds > max_seconds:
        raise AudioTooLong(seconds=_seconds(seconds), limit=_seconds(max_seconds))


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size / 1000:.0f} KB"


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.1f} MP" if pixels >= 100_000 else f"{pixels} pixels"


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f} s"
