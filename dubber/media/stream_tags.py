"""What an output carries over from its source besides picture and sound: the container's tags (title, artist,
date...), the video stream's, chapters and subtitle streams, and the languages its tracks are tagged with.

FFmpeg's command line keeps a source's global and stream tags and its chapters by default; a dub keeps them too,
less the tags that describe the source's own encoding (its encoder, MP4 brands, Matroska's per-stream duration) or
a rotation the decoded frames no longer need.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from dubber.errors import InputError
from dubber.media.container import main_audio_stream, main_video_stream, open_input

# Tags that describe how the source was written (the muxer writes its own) or what the decoder already applied.
_OWN_TAGS = frozenset(
    {
        "encoder",
        "major_brand",
        "minor_version",
        "compatible_brands",
        "duration",
        "rotate",
        "number_of_frames",
        "number_of_bytes",
        "_statistics_tags",
        "_statistics_writing_app",
        "_statistics_writing_date_utc",
    }
)
_LANGUAGE = re.compile(r"[a-z]{3}")
UNDETERMINED = "und"


def carried_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """``tags`` without those that describe the source's own encoding (compared case-insensitively: Matroska
    writes DURATION, MP4 duration)."""
    return {k: v for k, v in (tags or {}).items() if k.lower() not in _OWN_TAGS and not k.lower().startswith("_")}


def language_code(text: str) -> str:
    """A track language as MP4 and Matroska store it: a three-letter ISO 639-2 code ("spa", "fra", "deu");
    raises ValueError otherwise (MP4 would store anything else as undetermined)."""
    code = text.strip().lower()
    if not _LANGUAGE.fullmatch(code):
        raise ValueError(f"language {text!r}: give a three-letter ISO 639-2 code (spa, fra, deu, jpn, ...)")
    return code


def stream_language(tags: Mapping[str, str] | None) -> str | None:
    """A stream's language tag, or None where it has none or says undetermined."""
    code = (tags or {}).get("language", "").strip().lower()
    return code if _LANGUAGE.fullmatch(code) and code != UNDETERMINED else None


@dataclass(frozen=True)
class SubtitleStreamInfo:
    """One subtitle stream of a file."""

    index: int  # the stream's index in its file
    codec: str  # FFmpeg's codec name: subrip, ass, mov_text, webvtt, hdmv_pgs_subtitle, ...
    tags: dict[str, str] = field(default_factory=dict)
    disposition: int = 0  # av.stream.Disposition flags (default, forced, hearing_impaired, ...)
    text: bool = True  # False: bitmap subtitles (PGS, DVD, DVB), which can be copied but never converted

    @property
    def language(self) -> str | None:
        return stream_language(self.tags)

    def to_dict(self) -> dict:
        return {"index": self.index, "codec": self.codec, "language": self.language, "text": self.text}


@dataclass(frozen=True)
class AudioStreamTags:
    """One audio stream of a file: its index there, its tags as carried and its disposition flags."""

    index: int
    tags: dict[str, str] = field(default_factory=dict)
    disposition: int = 0

    @property
    def language(self) -> str | None:
        return stream_language(self.tags)


@dataclass(frozen=True)
class Attachment:
    """A file a Matroska source carries beside its streams: the fonts its ASS subtitles are styled with, a cover."""

    name: str
    mimetype: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Chapter:
    start: float  # seconds from the first video frame
    end: float
    title: str | None = None


@dataclass(frozen=True)
class SourceExtras:
    """What a source carries besides its picture and sound (``read_extras``)."""

    tags: dict[str, str] = field(default_factory=dict)  # the container's, as carried
    video_tags: dict[str, str] = field(default_factory=dict)  # the main video stream's, as carried
    audio: tuple[AudioStreamTags, ...] = ()  # every audio stream's, in the file's order
    main_audio: int | None = None  # the index of the one a player plays (and a dub hears)
    chapters: tuple[Chapter, ...] = ()
    subtitles: tuple[SubtitleStreamInfo, ...] = ()
    video_start: float = 0.0  # the first video frame's time (seconds): the output's zero
    attachments: tuple[Attachment, ...] = ()

    @property
    def audio_language(self) -> str | None:
        """The main audio stream's language (the one a dub hears), or None."""
        return next((a.language for a in self.audio if a.index == self.main_audio), None)


BITMAP_SUBTITLES = frozenset({"hdmv_pgs_subtitle", "dvd_subtitle", "dvb_subtitle", "xsub"})


def codec_name(stream) -> str:
    """The stream's codec by FFmpeg's codec name (the decoder's name can differ: "srt" decodes subrip)."""
    descriptor = getattr(stream.codec_context.codec, "canonical_name", None) or stream.codec_context.name
    return "subrip" if descriptor == "srt" else descriptor


def subtitle_streams(container: av.container.InputContainer) -> tuple[SubtitleStreamInfo, ...]:
    return tuple(
        SubtitleStreamInfo(
            index=s.index,
            codec=codec_name(s),
            tags=carried_tags(s.metadata),
            disposition=int(s.disposition),
            text=codec_name(s) not in BITMAP_SUBTITLES,
        )
        for s in container.streams.subtitles
    )


def read_extras(path: str | Path) -> SourceExtras:
    """The container's and streams' tags, chapters (on the video's clock: seconds from its first frame) and
    subtitle streams of ``path``. Raises :class:`dubber.errors.InputError` subclasses naming the file."""
    with open_input(Path(path)) as container:
        video = main_video_stream(container) if container.streams.video else None
        start = float(video.start_time * video.time_base) if video is not None and video.start_time else 0.0
        chapters = []
        for c in container.chapters():
            tb = Fraction(c["time_base"]) if c.get("time_base") else Fraction(1, av.time_base)
            title = (c.get("metadata") or {}).get("title")
            begins, ends = max(0.0, float(c["start"] * tb) - start), float(c["end"] * tb) - start
            if ends > begins:
                chapters.append(Chapter(begins, ends, title))
        audio = tuple(
            AudioStreamTags(a.index, carried_tags(a.metadata), int(a.disposition)) for a in container.streams.audio
        )
        return SourceExtras(
            tags=carried_tags(container.metadata),
            video_tags=carried_tags(video.metadata) if video is not None else {},
            audio=audio,
            chapters=tuple(chapters),
            subtitles=subtitle_streams(container),
            video_start=start,
            attachments=tuple(
                Attachment(a.metadata.get("filename", f"attachment{a.index}"), a.mimetype or "", a.data or b"")
                for a in container.streams
                if a.type == "attachment"
            ),
            main_audio=None if (main := main_audio_stream(container)) is None else main.index,
        )


def first_subtitle_stream(path: str | Path) -> SubtitleStreamInfo:
    """The first subtitle stream of ``path`` (a .srt, .ass or .vtt file, or any file holding one)."""
    with open_input(Path(path)) as container:
        streams = subtitle_streams(container)
    if not streams:
        raise InputError(path, "no subtitle stream (give a .srt, .ass or .vtt file)")
    return streams[0]


def chapters_until(chapters: tuple[Chapter, ...], seconds: float) -> list[dict]:
    """``chapters`` that start before ``seconds``, the last cut there, as PyAV's ``set_chapters`` takes them (in
    milliseconds)."""
    ms = Fraction(1, 1000)
    out = []
    for k, c in enumerate(ch for ch in chapters if ch.start < seconds):
        start, end = max(0.0, c.start), min(c.end, seconds)
        meta = {"title": c.title} if c.title else {}
        out.append(
            {"id": k + 1, "start": round(start * 1000), "end": round(end * 1000), "time_base": ms, "metadata": meta}
        )
    return out
