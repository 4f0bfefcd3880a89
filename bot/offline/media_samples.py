"""Photos and recordings made by the tests themselves: Pillow images, PyAV-encoded sound.

All in memory, like what a person sends: a voice note is OGG/Opus at 48 kHz,
as Telegram's apps record it; MP3 and M4A stand in for audio files.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import cast

import av
import numpy as np
from PIL import Image

# EXIF tag 0x0112: 6 means "rotate 90° clockwise to view".
_ORIENTATION = 0x0112


def image_bytes(
    width: int = 64,
    height: int = 48,
    *,
    image_format: str = "JPEG",
    orientation: int | None = None,
) -> bytes:
    """A two-coloured picture (left half red, right half blue), optionally with EXIF orientation."""
    image = Image.new("RGB", (width, height), (200, 20, 20))
    image.paste((20, 20, 200), (width // 2, 0, width, height))
    out = io.BytesIO()
    if orientation is None:
        image.save(out, format=image_format)
    else:
        exif = Image.Exif()
        exif[_ORIENTATION] = orientation
        image.save(out, format=image_format, exif=exif.tobytes())
    return out.getvalue()


def tone(seconds: float, rate: int, frequency: float = 440.0) -> np.ndarray:
    """A sine tone at half volume, mono float32."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def sound_bytes(
    seconds: float = 1.0,
    *,
    container: str = "ogg",
    codec: str = "libopus",
    rate: int = 48_000,
) -> bytes:
    """A tone encoded as a file: OGG/Opus (a voice note) by default, or mp3 / ipod (M4A)."""
    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as muxer:
        stream = cast(av.AudioStream, muxer.add_stream(codec, rate=rate, layout="mono"))
        samples = tone(seconds, rate)
        frame_size = 960
        for start in range(0, len(samples), frame_size):
            chunk = samples[start : start + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                muxer.mux(packet)
        for packet in stream.encode(None):
            muxer.mux(packet)
    return out.getvalue()
