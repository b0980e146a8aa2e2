"""Decode the audio of any file PyAV reads (wav, mp3, flac, m4a, a video's track...) to float32 samples."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dubber.errors import EmptyMediaError, MediaDecodeError, NoAudioStreamError
from dubber.log import get_logger
from dubber.media.container import open_input
from dubber.media.probe import declared_duration

log = get_logger("media")

FEATURE_SAMPLE_RATE = 16_000


@dataclass
class AudioClip:
    """Float32 samples in [-1, 1], shaped (channels, samples)."""

    samples: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    @property
    def mono(self) -> np.ndarray:
        """1-D mono samples (the mean of the channels when there are several)."""
        return self.samples[0] if self.channels == 1 else self.samples.mean(axis=0, dtype=np.float32)


def decode_audio(path: str | Path, *, sample_rate: int | None = FEATURE_SAMPLE_RATE, mono: bool = True) -> AudioClip:
    """Decode the first audio stream of ``path``.

    ``sample_rate=None`` keeps the source rate; otherwise FFmpeg's resampler (swresample, band-limited) converts.
    ``mono=True`` downmixes with the channel layout's standard matrix.
    """
    p = Path(path)
    with open_input(p) as container:
        if not container.streams.audio:
            raise NoAudioStreamError(p, "no audio stream")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        declared = declared_duration(stream, Fraction(stream.time_base)) if stream.time_base else None
        rate = sample_rate or stream.codec_context.sample_rate
        if not rate:
            raise MediaDecodeError(p, "the audio stream has no sample rate")
        layout = "mono" if mono else (stream.codec_context.layout.name if stream.codec_context.channels else "mono")
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks: list[np.ndarray] = []
        decoded = 0
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler keep its own running clock: source gaps must not drop samples
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
                decoded += 1
        except av.error.FFmpegError as exc:
            if decoded == 0:
                raise MediaDecodeError(p, f"audio cannot be decoded ({exc.strerror or exc})") from None
            log.warning("%s: audio decoding stopped early (%s); using what was decoded", p, exc.strerror or exc)
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    if not chunks:
        raise EmptyMediaError(p, "the audio stream holds no samples")
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    if declared is not None:
        # AAC/MP3 decoders emit the encoder's end padding; the container's declared duration excludes it.
        samples = samples[:, : max(1, int(round(declared * rate)))]
    if samples.shape[1] == 0:
        raise EmptyMediaError(p, "the audio stream holds no samples")
    return AudioClip(samples=np.ascontiguousarray(samples), sample_rate=int(rate))


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Mono float samples in [-1, 1] as a 16-bit PCM WAV (clipped; speech for the demo, benchmarks and evaluation)."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)[None, :]
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=sample_rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = sample_rate
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return Path(path)
