"""Audio sources for the video writer, muxed as the video advances so the file interleaves and nothing piles up.

Writing all the video and then all the audio would make FFmpeg's interleaver buffer packets and leave a badly
interleaved file; each feed here is asked for "everything up to time t" after every video frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dubber.errors import MediaDecodeError, NoAudioStreamError
from dubber.media.audio import AudioClip, decode_audio
from dubber.media.container import open_input
from dubber.media.encode_options import AudioEncodeOptions, can_copy_audio

_CHUNK = 1024  # AAC's frame size; other encoders re-chunk inside PyAV


@dataclass(frozen=True)
class AudioFromFile:
    """Take the audio track of a file: stream-copied when the output container accepts its codec, else AAC.

    ``start`` and ``duration`` (seconds) select a span; packets are cut at packet granularity when copying.
    """

    path: Path
    start: float = 0.0
    duration: float | None = None


class AudioFeed:
    def open(self, container: av.container.OutputContainer, container_format: str) -> None:
        raise NotImplementedError

    def write_until(self, t: float) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release inputs; safe to call after a failure."""


class EncodedSamplesFeed(AudioFeed):
    """Encode float32 samples (e.g. the new dub audio) with the chosen codec."""

    def __init__(self, clip: AudioClip, options: AudioEncodeOptions) -> None:
        if clip.channels not in (1, 2):
            # Downmix anything beyond stereo: every player handles mono/stereo AAC.
            clip = AudioClip(samples=clip.mono[None, :], sample_rate=clip.sample_rate)
        self.clip = clip
        self.options = options
        self.pos = 0

    def open(self, container: av.container.OutputContainer, container_format: str) -> None:
        self.container = container
        self.stream = container.add_stream(self.options.codec, rate=self.clip.sample_rate)
        self.stream.layout = "mono" if self.clip.channels == 1 else "stereo"
        self.stream.bit_rate = self.options.bit_rate
        self.stream.time_base = Fraction(1, self.clip.sample_rate)

    def _encode_chunk(self, end: int) -> None:
        data = np.ascontiguousarray(self.clip.samples[:, self.pos : end], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(data, format="fltp", layout=self.stream.layout.name)
        frame.sample_rate = self.clip.sample_rate
        frame.pts = self.pos
        frame.time_base = Fraction(1, self.clip.sample_rate)
        self.container.mux(self.stream.encode(frame))
        self.pos = end

    def write_until(self, t: float) -> None:
        target = min(self.clip.num_samples, math.ceil(t * self.clip.sample_rate))
        while self.pos + _CHUNK <= target:
            self._encode_chunk(self.pos + _CHUNK)

    def finish(self) -> None:
        while self.pos < self.clip.num_samples:
            self._encode_chunk(min(self.pos + _CHUNK, self.clip.num_samples))
        self.container.mux(self.stream.encode(None))


class CopiedStreamFeed(AudioFeed):
    """Remux a source file's audio packets without re-encoding."""

    def __init__(self, source: AudioFromFile) -> None:
        self.source = source
        self.input = open_input(source.path)
        if not self.input.streams.audio:
            self.input.close()
            raise NoAudioStreamError(source.path, "no audio stream to copy")
        self.in_stream = self.input.streams.audio[0]
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


def make_audio_feed(
    audio: AudioClip | AudioFromFile | None, container_format: str, options: AudioEncodeOptions
) -> AudioFeed | None:
    """Pick how the audio gets into the output: encode samples, copy packets, or decode and re-encode."""
    if audio is None:
        return None
    if isinstance(audio, AudioClip):
        return EncodedSamplesFeed(audio, options)
    copy = CopiedStreamFeed(audio)
    if can_copy_audio(container_format, copy.codec_name):
        return copy
    copy.close()
    clip = decode_audio(audio.path, sample_rate=None, mono=False)
    first = int(round(audio.start * clip.sample_rate))
    last = None if audio.duration is None else first + int(round(audio.duration * clip.sample_rate))
    return EncodedSamplesFeed(AudioClip(clip.samples[:, first:last], clip.sample_rate), options)
