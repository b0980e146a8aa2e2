"""Audio sources for the video writer, muxed as the video advances so the file interleaves and nothing piles up.

Writing all the video and then all the audio would make FFmpeg's interleaver buffer packets and leave a badly
interleaved file; each feed here is asked for "everything up to time t" after every video frame.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dubber.errors import MediaDecodeError, NoAudioStreamError
from dubber.media.audio import AudioClip, AudioReader, channel_layout_name, skip_samples
from dubber.media.container import audio_stream, open_input, sound_lead
from dubber.media.encode_options import AudioEncodeOptions, can_copy_audio, encode_rate
from dubber.media.splice_fades import FADE_SECONDS, faded

_CHUNK = 1024  # AAC's frame size; other encoders re-chunk inside PyAV


@dataclass(frozen=True)
class AudioFromFile:
    """Take the audio track of a file: stream-copied when the output container accepts its codec, else AAC.

    ``start`` and ``duration`` (seconds) select a span; packets are cut at packet granularity when copying.
    """

    path: Path
    start: float = 0.0
    duration: float | None = None
    stream: int | None = None  # the audio stream's index in the file; None: its main one (``main_audio_stream``)
    tags: tuple[tuple[str, str], ...] = ()  # the output track's (language, title)
    disposition: int = 0  # the output track's av.stream.Disposition flags (default, dub, original)


def own_sound(path: str | Path, *, start: float = 0.0, duration: float | None = None, stream: int | None = None):
    """``AudioFromFile`` of a video's own sound on its picture's clock: from ``start`` seconds after its first frame
    (a sound that starts later gets silence, copied packets keep their place; one that starts earlier is cut
    there), ``sound_lead``."""
    return AudioFromFile(Path(path), start - sound_lead(path, stream), duration, stream)


class StreamFeed:
    """A stream muxed beside the video, asked after every video frame for everything up to that time (audio here,
    subtitles in ``subtitle_feed``)."""

    def open(self, container: av.container.OutputContainer, container_format: str) -> None:
        raise NotImplementedError

    def write_until(self, t: float) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release inputs; safe to call after a failure."""


def packed_frame(samples: np.ndarray, layout: str, sample_rate: int) -> av.AudioFrame:
    """(channels, n) float32 samples as one interleaved frame: PyAV builds planar frames of at most 8 channels, packed
    ones of any count (the encoder converts to its own sample format)."""
    packed = np.ascontiguousarray(np.asarray(samples, np.float32).T).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(packed, format="flt", layout=layout)
    frame.sample_rate = sample_rate
    return frame


@functools.cache
def _encodes(codec: str, layout: str) -> bool:
    """Whether ``codec`` encodes ``layout`` in this FFmpeg build."""
    try:
        with av.open(io.BytesIO(), "w", format="matroska") as probe:
            stream = probe.add_stream(codec, rate=48_000)
            stream.layout = layout
            silence = np.zeros((av.AudioLayout(layout).nb_channels, _CHUNK), np.float32)
            probe.mux(stream.encode(packed_frame(silence, layout, 48_000)))
            probe.mux(stream.encode(None))
        return True
    except (av.error.FFmpegError, ValueError, TypeError):
        return False


def output_layout(layout: str, codec: str) -> str:
    """The layout the output track gets: the source's own when ``codec`` can hold it (a 5.1 track stays 5.1), else
    7.1 or 5.1 for wider sources (AAC holds at most 16 channels: 22.2 becomes 7.1), else stereo; converted by
    FFmpeg's standard matrix, never by averaging channels."""
    for candidate in (layout, "7.1", "5.1", "stereo"):
        narrower = av.AudioLayout(candidate).nb_channels <= av.AudioLayout(layout).nb_channels
        if narrower and _encodes(codec, candidate):
            return candidate
    return "stereo"


class EncodedSamplesFeed(StreamFeed):
    """Encode float32 sample blocks (``(channels, n)`` in channel ``layout``, e.g. the new dub audio) with the chosen
    codec, pulling blocks only as the video advances."""

    def __init__(
        self,
        blocks: Iterable[np.ndarray],
        sample_rate: int,
        layout: str,
        options: AudioEncodeOptions,
        *,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.layout = layout
        self.channels = av.AudioLayout(layout).nb_channels
        self.blocks = iter(blocks)
        self.sample_rate = int(sample_rate)
        self.options = options
        self.on_close = on_close
        self.pos = 0
        self.held = np.zeros((self.channels, 0), np.float32)
        self.exhausted = False

    @classmethod
    def from_clip(cls, clip: AudioClip, options: AudioEncodeOptions) -> EncodedSamplesFeed:
        layout = channel_layout_name("", clip.channels)
        target = output_layout(layout, options.codec)
        samples = clip.samples if target == layout else convert_layout(clip.samples, layout, target, clip.sample_rate)
        return cls([samples], clip.sample_rate, target, options)

    def open(self, container: av.container.OutputContainer, container_format: str) -> None:
        self.container = container
        rate = encode_rate(self.options.codec, self.sample_rate)  # the encoder resamples frames of another rate
        self.stream = container.add_stream(self.options.codec, rate=rate)
        self.stream.layout = self.layout
        self.stream.bit_rate = self.options.bit_rate
        self.stream.time_base = Fraction(1, rate)

    def _fill(self, count: int) -> None:
        parts = [self.held]
        have = self.held.shape[1]
        while have < count and not self.exhausted:
            block = next(self.blocks, None)
            if block is None:
                self.exhausted = True
                break
            parts.append(np.asarray(block, np.float32))
            have += block.shape[1]
        if len(parts) > 1:
            self.held = np.concatenate(parts, axis=1)

    def _encode_chunk(self, count: int) -> None:
        frame = packed_frame(self.held[:, :count], self.layout, self.sample_rate)
        self.held = self.held[:, count:]
        frame.pts = self.pos
        frame.time_base = Fraction(1, self.sample_rate)
        self.container.mux(self.stream.encode(frame))
        self.pos += count

    def write_until(self, t: float) -> None:
        target = math.ceil(t * self.sample_rate)
        while self.pos + _CHUNK <= target:
            self._fill(_CHUNK)
            if self.held.shape[1] < _CHUNK:
                return  # the end of the samples: finish() encodes the last short chunk
            self._encode_chunk(_CHUNK)

    def finish(self) -> None:
        while True:
            self._fill(_CHUNK)
            if self.held.shape[1] == 0:
                break
            self._encode_chunk(min(_CHUNK, self.held.shape[1]))
        self.container.mux(self.stream.encode(None))

    def close(self) -> None:
        if self.on_close is not None:
            self.on_close()
            self.on_close = None


class CopiedStreamFeed(StreamFeed):
    """Remux a source file's audio packets without re-encoding."""

    def __init__(self, source: AudioFromFile) -> None:
        self.source = source
        self.input = open_input(source.path)
        self.in_stream = audio_stream(self.input, source.stream)
        if self.in_stream is None:
            self.input.close()
            raise NoAudioStreamError(source.path, "no audio stream to copy")
        self.packets = self.input.demux(self.in_stream)
        self.pending: av.Packet | None = None
        self.done = False

    @property
    def codec_name(self) -> str:
        return self.in_stream.codec_context.name

    def open(self, container: av.container.OutputContainer, container_format: str) -> None:
        self.container = container
        self.stream = container.add_stream_from_template(self.in_stream)

    def _next(self) -> av.Packet | None:
        if self.pending is not None:
            p, self.pending = self.pending, None
            return p
        try:
            for packet in self.packets:
                if packet.dts is None or packet.size == 0:
                    continue
                return packet
        except av.error.FFmpegError as exc:
            raise MediaDecodeError(self.source.path, f"corrupt audio data ({exc.strerror or exc})") from None
        return None

    def write_until(self, t: float) -> None:
        tb = self.in_stream.time_base
        start = self.in_stream.start_time or 0
        while not self.done:
            packet = self._next()
            if packet is None:
                self.done = True
                return
            pts = packet.pts if packet.pts is not None else packet.dts
            when = float((pts - start) * tb) - self.source.start
            ends = when + float((packet.duration or 0) * tb)
            # Packets before the span are dropped, but a copy from the start keeps the encoder's priming packets
            # (negative pts, e.g. AAC's first 1024 samples): the decoder needs them and the muxer keeps them hidden.
            if self.source.start > 0 and ends <= 0:
                continue
            if self.source.duration is not None and when >= self.source.duration:
                self.done = True
                return
            if when >= t:
                self.pending = packet
                return
            # Shift the span's start to zero in the output.
            shift = int(round(self.source.start / tb)) + start
            packet.pts = pts - shift
            packet.dts = packet.dts - shift
            packet.stream = self.stream
            self.container.mux(packet)

    def finish(self) -> None:
        self.write_until(math.inf)

    def close(self) -> None:
        self.input.close()


@dataclass(frozen=True)
class AudioSpan:
    """``seconds`` of a file's audio from ``start`` (``path`` None: silence); padded with silence when the file
    ends first, to the file's end when ``seconds`` is None; ``start`` < 0: that much silence first (a video's own
    sound that starts after its picture, ``own_sound``)."""

    path: Path | None
    start: float = 0.0
    seconds: float | None = None
    stream: int | None = None  # the audio stream's index in the file; None: its main one (``main_audio_stream``)


@dataclass(frozen=True)
class SplicedAudio:
    """Spans of audio one after the other, decoded as the video advances and encoded at one rate (None: the first
    file's) and one channel layout: the widest file's, where the codec holds it (``output_layout``). A mono file in
    a stereo track is heard in both channels at its own level, as players play mono; other layouts are converted
    by FFmpeg's standard matrix (a mono file in 5.1 is the centre channel)."""

    spans: tuple[AudioSpan, ...]
    sample_rate: int | None = None
    tags: tuple[tuple[str, str], ...] = ()  # the output track's (language, title)
    disposition: int = 0  # the output track's av.stream.Disposition flags


def _spliced_feed(audio: SplicedAudio, options: AudioEncodeOptions) -> EncodedSamplesFeed:
    with ExitStack() as undo:
        readers: list[AudioReader | None] = []
        rate = audio.sample_rate
        for span in audio.spans:
            reader = None
            if span.path is not None:
                reader = undo.enter_context(AudioReader(span.path, sample_rate=rate, mono=False, stream=span.stream))
                rate = reader.sample_rate
            readers.append(reader)
        if rate is None:
            raise ValueError("spliced audio made only of silence needs a sample rate")
        opened = [r for r in readers if r is not None]
        widest = max(opened, key=lambda r: av.AudioLayout(r.source_layout).nb_channels).source_layout
        layout = output_layout(widest, options.codec)
        channels = av.AudioLayout(layout).nb_channels
        for reader in opened:
            if not (reader.source_layout == "mono" and layout == "stereo"):
                reader.convert_to(layout)
        closing = undo.pop_all()

    def blocks() -> Iterator[np.ndarray]:
        fade, last = max(1, round(FADE_SECONDS * rate)), len(audio.spans) - 1
        for k, (span, reader) in enumerate(zip(audio.spans, readers, strict=True)):
            yield from faded(span_blocks(span, reader), fade if k > 0 else 0, fade if k < last else 0)

    def span_blocks(span: AudioSpan, reader: AudioReader | None) -> Iterator[np.ndarray]:
        skip = int(round(span.start * rate))
        left = None if span.seconds is None else int(round(span.seconds * rate))
        quiet = max(0, -skip) if left is None else min(max(0, -skip), left)
        skip = max(0, skip)
        if left is not None:
            left -= quiet
        for start in range(0, quiet, rate):  # before the file's sound starts
            yield np.zeros((channels, min(rate, quiet - start)), np.float32)
        if left == 0:
            return
        for block in skip_samples(reader.blocks() if reader is not None else (), skip):
            if not block.shape[1]:
                continue
            if left is not None:
                block = block[:, :left]
                left -= block.shape[1]
            if block.shape[0] != channels:  # mono in stereo
                block = np.repeat(block, channels, axis=0)
            yield block
            if left == 0:
                break
        while left:  # silence to the span's length, a second at a time
            n = min(left, rate)
            left -= n
            yield np.zeros((channels, n), np.float32)

    return EncodedSamplesFeed(blocks(), rate, layout, options, on_close=closing.close)


def convert_layout(samples: np.ndarray, layout: str, target: str, sample_rate: int) -> np.ndarray:
    """(channels, n) float32 samples in ``layout`` -> the same in ``target``, by FFmpeg's standard matrix."""
    resampler = av.AudioResampler(format="flt", layout=target, rate=sample_rate)
    frames = [*resampler.resample(packed_frame(samples, layout, sample_rate)), *resampler.resample(None)]
    channels = av.AudioLayout(target).nb_channels
    return np.ascontiguousarray(np.concatenate([f.to_ndarray() for f in frames], 1).reshape(-1, channels).T)


AudioSource = AudioClip | AudioFromFile | SplicedAudio


def make_audio_feed(audio: AudioSource | None, container_format: str, options: AudioEncodeOptions) -> StreamFeed | None:
    """Pick how the audio gets into the output: encode samples, copy packets, or decode and re-encode."""
    if audio is None:
        return None
    if isinstance(audio, AudioClip):
        return EncodedSamplesFeed.from_clip(audio, options)
    if isinstance(audio, SplicedAudio):
        return _spliced_feed(audio, options)
    copy = CopiedStreamFeed(audio)
    if can_copy_audio(container_format, copy.codec_name):
        return copy
    copy.close()
    return _spliced_feed(SplicedAudio((AudioSpan(audio.path, audio.start, audio.duration, audio.stream),)), options)


def label_track(stream, source: AudioSource) -> None:
    """Give an output audio ``stream`` its source's tags and disposition (an ``AudioClip`` has none)."""
    stream.metadata.update(dict(getattr(source, "tags", ())))
    stream.disposition = av.stream.Disposition(getattr(source, "disposition", 0))
