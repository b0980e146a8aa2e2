"""Everything the dub's output carries besides its frames: the audio tracks (the new speech first, labelled with
its language, and the source's own when kept), the source's subtitle tracks and a subtitle file of the new speech,
the source's tags and chapters, each moved onto the output's clock and cut at its end."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import av

from dubber.log import get_logger
from dubber.media.audio_feed import AudioFromFile, AudioSpan, SplicedAudio, own_sound
from dubber.media.container import sound_lead
from dubber.media.encode_options import container_format_for
from dubber.media.probe import MediaInfo
from dubber.media.stream_tags import Attachment, AudioStreamTags, SourceExtras, chapters_until, read_extras
from dubber.media.subtitle_feed import SubtitleSource, subtitle_codec
from dubber.pipeline.timeline import Timeline

log = get_logger("pipeline")

_DEFAULT, _DUB, _ORIGINAL = (int(av.stream.Disposition[n]) for n in ("default", "dub", "original"))
_RATE = 48_000  # the spliced track's sample rate


def spliced_speech(audio: Path, source: MediaInfo, timeline: Timeline, fps: float) -> SplicedAudio:
    """The source's own audio over the frames before the dub, the new speech over the dubbed frames, then the
    source's own audio over the frames kept after it (each cut or padded with silence to its span), decoded as the
    video is written."""
    own = source.path if source.audio is not None else None
    lead = 0.0 if own is None else sound_lead(own)  # the source's sound on its picture's clock
    spans = [AudioSpan(own, -lead, timeline.lead_frames / fps)] if timeline.lead_frames else []
    spans.append(AudioSpan(audio, 0.0, timeline.dub_frames / fps))
    if timeline.rest_frames:
        spans.append(AudioSpan(own, timeline.dub_end / fps - lead, timeline.rest_frames / fps))
    return SplicedAudio(tuple(spans), sample_rate=_RATE)


def output_audio(
    audio: Path, source: MediaInfo, timeline: Timeline, fps: float, *, originals: Sequence[int] = ()
) -> list[AudioFromFile | SplicedAudio]:
    """The new speech's track (after the source's own audio where the dub starts into the video, and followed by
    it when the rest of a longer video is kept; stream-copied where it is the whole track and the container takes
    its codec), then the source's audio streams ``originals`` (their indices in it) as they are, each where the
    source presents it beside the picture."""
    if timeline.lead_frames or timeline.rest_frames:
        tracks: list[AudioFromFile | SplicedAudio] = [spliced_speech(audio, source, timeline, fps)]
    else:
        tracks = [AudioFromFile(audio)]
    seconds = timeline.total_frames / fps
    tracks += [own_sound(source.path, duration=seconds, stream=index) for index in originals]
    return tracks


@dataclass
class OutputStreams:
    """What ``VideoWriter`` is given besides the frames, and a line per track for the dub's result."""

    audio: list[AudioFromFile | SplicedAudio]
    subtitles: list[SubtitleSource] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    video_tags: dict[str, str] = field(default_factory=dict)
    chapters: list[dict] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)  # the fonts of carried subtitles (Matroska)
    audio_tracks: list[dict] = field(default_factory=list)  # {"type", "language", "from"} per audio track
    subtitle_tracks: list[dict] = field(default_factory=list)  # ... per subtitle source, in the same order
    left_out: list[SubtitleSource] = field(default_factory=list)  # subtitle sources the writer could not carry

    @property
    def tracks(self) -> list[dict]:
        """The output's audio and subtitle tracks in order: {"type", "language", "from"}."""
        kept = [d for s, d in zip(self.subtitles, self.subtitle_tracks, strict=True) if s not in self.left_out]
        return self.audio_tracks + kept


def output_streams(
    video: Path,
    audio: Path,
    media: MediaInfo,
    output: Path,
    timeline: Timeline,
    fps: float,
    *,
    language: str | None = None,
    keep_original: bool = False,
    source_subtitles: bool = True,
    subtitles: Path | None = None,
) -> OutputStreams:
    """The output's tracks, tags and chapters for a dub of ``video`` with ``audio`` along ``timeline``.

    The new speech's track is the default one, tagged ``language`` (else the audio file's own language tag); the
    source's audio tracks, when kept, follow it with their own tags, the new one marked as a dub. The
    source's subtitles and chapters keep their times (the output's frames are the source's own up to its end) and
    stop at the output's end; ``subtitles`` (a file of the new speech) starts where the new speech does.
    """
    extras = read_extras(video)
    new_audio = read_extras(audio) if audio != video else extras
    language = language or new_audio.audio_language
    seconds = timeline.total_frames / fps
    originals = extras.audio if keep_original else ()
    if keep_original and not originals:
        log.warning("%s has no audio: no original track to keep", video)
    tracks = output_audio(audio, media, timeline, fps, originals=[a.index for a in originals])
    labels = (("language", language),) if language else ()
    tracks[0] = replace(tracks[0], tags=labels, disposition=_DEFAULT | (_DUB if originals else 0))
    for k, flags in enumerate(_original_flags(originals), 1):
        tracks[k] = replace(tracks[k], tags=tuple(originals[k - 1].tags.items()), disposition=flags)
    described = [{"type": "audio", "language": language, "from": "audio"}]
    described += [{"type": "audio", "language": a.language, "from": "video"} for a in originals]
    streams = OutputStreams(
        tracks,
        tags=extras.tags,
        video_tags=extras.video_tags,
        chapters=chapters_until(extras.chapters, seconds),
        audio_tracks=described,
    )
    if source_subtitles:
        _carry_subtitles(video, extras, output, seconds, streams)
        if streams.subtitles and extras.attachments:  # their fonts (and a cover), where the container holds them
            if container_format_for(output) == "matroska":
                streams.attachments = list(extras.attachments)
            else:
                log.info(
                    "%s: its %d attached files (fonts) are left out: only .mkv holds them",
                    video,
                    len(extras.attachments),
                )
    if subtitles is not None:
        lead = timeline.lead_frames / fps
        ends = (timeline.lead_frames + timeline.dub_frames) / fps
        streams.subtitles.append(SubtitleSource(subtitles, None, lead, ends, labels))
        streams.subtitle_tracks.append({"type": "subtitle", "language": language, "from": "subtitles"})
    return streams


def _original_flags(originals: Sequence[AudioStreamTags]) -> list[int]:
    """The source's own audio tracks' flags beside a new default track: theirs less the default; where none is
    marked as the original, the first not marked as a dub is (a film with dubs of its own marks those)."""
    flags = [a.disposition & ~_DEFAULT for a in originals]
    if not any(f & _ORIGINAL for f in flags):
        undubbed = [k for k, f in enumerate(flags) if not f & _DUB]
        if undubbed:
            flags[undubbed[0]] |= _ORIGINAL
    return flags


def _carry_subtitles(video: Path, extras: SourceExtras, output: Path, seconds: float, streams: OutputStreams) -> None:
    container = container_format_for(output)
    for s in extras.subtitles:
        if subtitle_codec(container, s.codec, s.text) is None:
            log.warning(
                "%s: its %s subtitle track %d cannot go into %s (write .mkv to keep it)",
                video,
                s.codec,
                s.index,
                output.suffix,
            )
            continue
        shift = -extras.video_start
        source = SubtitleSource(video, s.index, shift, seconds, tuple(s.tags.items()), s.disposition, optional=True)
        streams.subtitles.append(source)
        streams.subtitle_tracks.append({"type": "subtitle", "language": s.language, "from": "video"})
