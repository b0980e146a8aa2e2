"""Decode the audio of any file PyAV reads (wav, mp3, flac, m4a, a video's track...) to float32 samples."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dubber.errors import EmptyMediaError, MediaDecodeError, NoAudioStreamError
from dubber.log import get_logger
from dubber.media.container import audio_stream, open_input
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


class AudioReader:
    """An audio stream of a file (``stream``: its index there; None: the one a player plays), decoded block by
    block: float32 ``(channels, n)`` blocks at ``sample_rate`` (None: the source rate), downmixed to mono when
    ``mono``. Memory stays that of one block however long the audio; :func:`decode_audio` joins the blocks.

    ``source_layout`` is the stream's channel layout (FFmpeg's name: "mono", "stereo", "5.1"...); ``layout`` the
    blocks', which :meth:`convert_to` may change before :meth:`blocks` is called.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        sample_rate: int | None = FEATURE_SAMPLE_RATE,
        mono: bool = True,
        dialogue: bool = False,
        stream: int | None = None,
    ) -> None:
        self.path = Path(path)
        self._container = open_input(self.path)
        try:
            picked = audio_stream(self._container, stream)
            if picked is None:
                raise NoAudioStreamError(self.path, "no audio stream" + ("" if stream is None else f" {stream}"))
            self._stream = stream = picked
            stream.thread_type = "AUTO"
            declared = declared_duration(stream, Fraction(stream.time_base)) if stream.time_base else None
            rate = sample_rate or stream.codec_context.sample_rate
            if not rate:
                raise MediaDecodeError(self.path, "the audio stream has no sample rate")
        except BaseException:
            self._container.close()
            raise
        self.sample_rate = int(rate)
        cc = stream.codec_context
        self.source_layout = channel_layout_name(cc.layout.name if cc.channels else "mono", cc.channels or 1)
        self.layout = "mono" if mono else self.source_layout
        # A surround mix's dialogue lives in its centre channel, the music and effects mostly around it: with
        # ``dialogue`` (and ``mono``), the blocks are that channel alone where the stream has one beside others.
        names = [c.name for c in av.AudioLayout(self.source_layout).channels]
        self._pick = names.index("FC") if mono and dialogue and "FC" in names and len(names) >= 3 else None
        if self._pick is not None:
            self.layout = self.source_layout
        # AAC/MP3 decoders emit the encoder's end padding; the container's declared duration excludes it.
        self._limit = None if declared is None else max(1, int(round(declared * self.sample_rate)))

    @property
    def channels(self) -> int:
        """How many rows a block has."""
        return 1 if self._pick is not None else av.AudioLayout(self.layout).nb_channels

    @property
    def centre_only(self) -> bool:
        """Whether the blocks are the centre channel of a surround mix (``dialogue``)."""
        return self._pick is not None

    def convert_to(self, layout: str) -> None:
        """Give the blocks in ``layout``: FFmpeg's standard matrix (ITU-R BS.775 for downmixes: centre and surrounds
        at -3 dB), so a 5.1 track's centre-channel dialogue keeps its level in stereo."""
        self.layout = layout

    def blocks(self) -> Iterator[np.ndarray]:
        """The samples in decoding order; raises ``EmptyMediaError`` when the stream holds none."""
        # Packed samples: PyAV converts planar frames of at most 8 channels to arrays, packed ones of any count.
        resampler = av.AudioResampler(format="flt", layout=self.layout, rate=self.sample_rate)
        channels = av.AudioLayout(self.layout).nb_channels  # as the resampler packs them
        given = decoded = 0

        def cut(packed: np.ndarray) -> np.ndarray:
            block = packed.reshape(-1, channels).T
            if self._pick is not None:
                block = block[self._pick : self._pick + 1]
            keep = block.shape[1] if self._limit is None else max(0, min(block.shape[1], self._limit - given))
            return np.ascontiguousarray(block[:, :keep], dtype=np.float32)

        try:
            for frame in self._container.decode(self._stream):
                frame.pts = None  # let the resampler keep its own running clock: source gaps must not drop samples
                for out in resampler.resample(frame):
                    block = cut(out.to_ndarray())
                    if block.shape[1]:
                        given += block.shape[1]
                        yield block
                decoded += 1
        except av.error.FFmpegError as exc:
            if decoded == 0:
                raise MediaDecodeError(self.path, f"audio cannot be decoded ({exc.strerror or exc})") from None
            log.warning("%s: audio decoding stopped early (%s); using what was decoded", self.path, exc.strerror or exc)
        for out in resampler.resample(None):
            block = cut(out.to_ndarray())
            if block.shape[1]:
                given += block.shape[1]
                yield block
        if given == 0:
            raise EmptyMediaError(self.path, "the audio stream holds no samples")

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# FFmpeg's default layout for a channel count (av_channel_layout_default).
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def skip_samples(blocks: Iterable[np.ndarray], samples: int) -> Iterator[np.ndarray]:
    """``blocks`` (channels, n) without their first ``samples`` samples (a block wholly skipped comes out empty)."""
    for block in blocks:
        if samples > 0:
            dropped = min(samples, block.shape[1])
            block, samples = block[:, dropped:], samples - dropped
        yield block


def channel_layout_name(name: str, channels: int) -> str:
    """A layout FFmpeg's resampler and encoders know: ``name``, or the default layout of ``channels`` channels when
    the stream declares no channel order (a WAV without a channel mask says "6 channels")."""
    try:
        known = av.AudioLayout(name).nb_channels == channels and not name.endswith("channels")
    except ValueError:
        known = False
    return name if known else _DEFAULT_LAYOUTS.get(channels, name)


def decode_audio(path: str | Path, *, sample_rate: int | None = FEATURE_SAMPLE_RATE, mono: bool = True) -> AudioClip:
    """Decode the audio stream of ``path`` a player plays (the one marked as the default, else the first).

    ``sample_rate=None`` keeps the source rate; otherwise FFmpeg's resampler (swresample, band-limited) converts.
    ``mono=True`` downmixes with the channel layout's standard matrix.
    """
    with AudioReader(path, sample_rate=sample_rate, mono=mono) as reader:
        chunks = list(reader.blocks())
        return AudioClip(samples=np.ascontiguousarray(np.concatenate(chunks, axis=1)), sample_rate=reader.sample_rate)


def decoded_seconds(path: str | Path, *, sample_rate: int = FEATURE_SAMPLE_RATE) -> float:
    """How long the audio stream of ``path`` a player plays lasts, counted in the samples it decodes to at
    ``sample_rate`` (as :func:`dubber.audio.streaming.stream_features` counts them, so a file's length is the same
    either way)."""
    with AudioReader(path, sample_rate=sample_rate, mono=True) as reader:
        return sum(block.shape[1] for block in reader.blocks()) / sample_rate


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
