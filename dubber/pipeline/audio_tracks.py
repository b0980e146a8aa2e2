"""The output's audio tracks: the new speech (stream-copied when the container takes its codec), after the source's
own audio where the dub starts into the video and followed by it when the rest of a longer video is kept, and
optionally the source's audio as a second track."""

from __future__ import annotations

from pathlib import Path

from dubber.log import get_logger
from dubber.media.audio_feed import AudioFromFile, AudioSpan, SplicedAudio
from dubber.media.probe import MediaInfo
from dubber.pipeline.timeline import Timeline

log = get_logger("pipeline")

_RATE = 48_000


def spliced_speech(audio: Path, source: MediaInfo, timeline: Timeline, fps: float) -> SplicedAudio:
    """The source's own audio over the frames before the dub, the new speech over the dubbed frames, then the
    source's own audio over the frames kept after it (each cut or padded with silence to its span), decoded as the
    video is written."""
    own = source.path if source.audio is not None else None
    spans = [AudioSpan(own, 0.0, timeline.lead_frames / fps)] if timeline.lead_frames else []
    spans.append(AudioSpan(audio, 0.0, timeline.dub_frames / fps))
    if timeline.rest_frames:
        spans.append(AudioSpan(own, timeline.dub_end / fps, timeline.rest_frames / fps))
    return SplicedAudio(tuple(spans), sample_rate=_RATE)


def output_audio(
    audio: Path, source: MediaInfo, timeline: Timeline, fps: float, *, keep_original: bool
) -> list[AudioFromFile | SplicedAudio]:
    tracks: list[AudioFromFile | SplicedAudio] = []
    if timeline.lead_frames or timeline.rest_frames:
        tracks.append(spliced_speech(audio, source, timeline, fps))
    else:
        tracks.append(AudioFromFile(audio))
    if keep_original:
        if source.audio is None:
            log.warning("%s has no audio: no original track to keep", source.path)
        else:
            tracks.append(AudioFromFile(source.path, duration=timeline.total_frames / fps))
    return tracks
