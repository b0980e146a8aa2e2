"""Subtitle streams for the video writer: a source's own subtitle tracks, or a subtitle file, muxed as the video
advances (as the audio feeds are), their cues moved onto the output's clock and cut at its end.

A stream the output container holds in the same codec is copied packet by packet (its styling kept); text
subtitles in another codec (an .srt or .ass file into MP4, MP4's mov_text into Matroska) are decoded and encoded
again by FFmpeg's own subtitle codecs. Bitmap subtitles (Blu-ray PGS, DVD, DVB) can only be copied, so they reach
Matroska alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from dubber.errors import InputError, MediaDecodeError
from dubber.log import get_logger
from dubber.media.audio_feed import StreamFeed
from dubber.media.container import open_input
from dubber.media.encode_options import container_format_for
from dubber.media.stream_tags import BITMAP_SUBTITLES, codec_name, first_subtitle_stream

log = get_logger("media")

# Subtitle codecs each muxer holds; the first is what text subtitles in another codec become.
_HELD = {
    "mp4": ("mov_text",),
    "mov": ("mov_text",),
    "matroska": ("subrip", "ass", "ssa", "webvtt", "hdmv_pgs_subtitle", "dvd_subtitle", "dvb_subtitle"),
    "webm": ("webvtt",),
}
_MS = Fraction(1, 1000)


def subtitle_codec(container_format: str, codec: str, text: bool) -> tuple[str, bool] | None:
    """(the output's codec, whether its packets are copied) for a subtitle stream in ``codec`` (``text``: not
    bitmaps) written into ``container_format``; None where the container cannot hold it in any codec."""
    held = _HELD.get(container_format, ())
    if codec in held:
        return codec, True
    if text and held:
        return held[0], False
    return None


def check_subtitle_file(subtitles: Path, output: Path) -> None:
    """A subtitle file the output can hold: a readable file whose first subtitle stream is text this FFmpeg
    converts, or bitmaps going into Matroska. Raises :class:`dubber.errors.InputError` naming it."""
    stream = first_subtitle_stream(subtitles)
    container = container_format_for(output)
    if subtitle_codec(container, stream.codec, stream.text) is None:
        raise InputError(subtitles, f"{stream.codec} subtitles cannot go into {output.suffix} (write .mkv)")
    SubtitleFeed(SubtitleSource(Path(subtitles)), container).close()  # its decoder and the encoder open


@dataclass(frozen=True)
class SubtitleSource:
    """A subtitle stream of ``path`` (``stream``: its index there; None: the file's first subtitle stream), its
    times moved by ``shift`` seconds onto the output's clock; nothing shown from ``until`` (output seconds) on.
    ``tags`` (language, title) and ``disposition`` (av.stream.Disposition flags) label the output's track."""

    path: Path
    stream: int | None = None
    shift: float = 0.0
    until: float | None = None
    tags: tuple[tuple[str, str], ...] = ()
    disposition: int = 0
    # A track that may be left out when it cannot be carried (a source's own: the dub goes on without it, with a
    # warning); else such a track fails the output (a subtitle file the user gave).
    optional: bool = False


class SubtitleFeed(StreamFeed):
    """Copy or convert one subtitle stream into the output, cue by cue, as the video advances."""

    def __init__(self, source: SubtitleSource, container_format: str) -> None:
        self.source = source
        self.input = open_input(source.path)
        try:
            streams = self.input.streams.subtitles
            picked = [s for s in streams if source.stream is None or s.index == source.stream]
            if not picked:
                raise MediaDecodeError(source.path, "no subtitle stream to carry")
            self.in_stream = picked[0]
            codec = codec_name(self.in_stream)
            choice = subtitle_codec(container_format, codec, codec not in BITMAP_SUBTITLES)
            if choice is None:
                raise MediaDecodeError(source.path, f"{codec} subtitles cannot be written to {container_format}")
            self.codec, self.copy = choice
            if not self.copy:  # opened now, so that a track this FFmpeg cannot convert fails before any is written
                try:
                    self.in_stream.codec_context.open()  # its ASS header (styles) is the encoder's
                    av.codec.Codec(self.codec, "w")
                except (av.error.FFmpegError, ValueError) as exc:
                    raise MediaDecodeError(source.path, f"its {codec} subtitles cannot be converted ({exc})") from None
        except BaseException:
            self.input.close()
            raise
        self.packets = self.input.demux(self.in_stream)
        self.pending: tuple[float, float, av.Packet] | None = None
        self.done = False
        self.last = -math.inf  # the last cue's start, in the output stream's ticks
        self.skipped = 0  # cues of an optional track that could not be converted

    def open(self, container: av.container.OutputContainer, container_format: str) -> None:
        self.container = container
        if self.copy:
            self.stream = container.add_stream_from_template(self.in_stream)
        else:
            self.stream = container.add_stream(self.codec)
            self.stream.codec_context.subtitle_header = self.in_stream.codec_context.subtitle_header
            self.stream.time_base = _MS
        self.stream.metadata.update(dict(self.source.tags))
        self.stream.disposition = av.stream.Disposition(self.source.disposition)

    def _next(self) -> tuple[float, float, av.Packet] | None:
        """The next cue: its start and end on the output's clock (seconds), and its packet."""
        if self.pending is not None:
            cue, self.pending = self.pending, None
            return cue
        tb = self.in_stream.time_base
        try:
            for packet in self.packets:
                if packet.size == 0 or packet.pts is None:
                    continue
                start = float(packet.pts * tb) + self.source.shift
                return start, start + float((packet.duration or 0) * tb), packet
        except av.error.FFmpegError as exc:
            raise MediaDecodeError(self.source.path, f"corrupt subtitle data ({exc.strerror or exc})") from None
        return None

    def write_until(self, t: float) -> None:
        until = math.inf if self.source.until is None else self.source.until
        while not self.done:
            cue = self._next()
            if cue is None or cue[0] >= until:
                self.done = True
                return
            start, end, packet = cue
            if start >= t:
                self.pending = cue
                return
            if end == start and start >= 0:  # no duration: a bitmap cue shown until the next one
                self._mux(start, None, packet)
                continue
            start, end = max(start, 0.0), min(end, until)
            if end > start:
                self._mux(start, end, packet)

    def _mux(self, start: float, end: float | None, packet: av.Packet) -> None:
        if self.copy:
            tb = self.in_stream.time_base
            out = packet
            out.pts = out.dts = round(start / tb)
            out.duration = 0 if end is None else max(1, round((end - start) / tb))
        else:
            try:
                cue = self.in_stream.codec_context.decode2(packet)
                if cue is None or len(cue) == 0 or end is None:
                    return  # a gap between cues (MP4 stores them as empty samples)
                out = self.stream.codec_context.encode_subtitle(cue)
            except av.error.FFmpegError as exc:
                if not self.source.optional:
                    raise MediaDecodeError(self.source.path, f"a corrupt subtitle ({exc.strerror or exc})") from None
                if not self.skipped:
                    log.warning("%s: a subtitle at %.2f s cannot be converted; left out", self.source.path, start)
                self.skipped += 1
                return
            out.time_base = _MS
            out.pts = out.dts = round(start * 1000)
            out.duration = max(1, round((end - start) * 1000))
        if out.pts <= self.last:  # cues that start together (ASS layers): MP4 needs each sample after the last
            out.pts = out.dts = int(self.last) + 1
        self.last = out.pts
        out.stream = self.stream
        self.container.mux(out)

    def finish(self) -> None:
        self.write_until(math.inf)

    def close(self) -> None:
        self.input.close()
