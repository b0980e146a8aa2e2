"""The output's audio tracks: the new speech (stream-copied when the container takes its codec), followed by the
source's own audio when the rest of a longer video is kept, and optionally the source's audio as a second track."""

from __future__ import annotations

from pathlib import Path

from dubber.log import get_logger
from dubber.media.audio_feed import AudioFromFile, AudioSpan, SplicedAudio
from dubber.media.probe import MediaInfo
from dubber.pipeline.timeline import Timeline

log = get_logger("pipeline")

_RATE = 48_000


def dub_then_rest(audio: Path, source: MediaInfo, timeline: Timeline, fps: float) -> SplicedAudio:
    """The new speech over the dubbed frames, then the source's own audio over the frames kept after it (each cut
    or padded with silence to its span), decoded as the video is written."""
    dub_end = timeline.dub_frames / fps
    end = timeline.total_frames / fps
    rest = AudioSpan(source.path if source.audio is not None else None, dub_end, end - dub_end)
    return SplicedAudio((AudioSpan(audio, 0.0, dub_end), rest), sample_rate=_RATE)


def output_audio(
    audio: Path, source: MediaInfo, timeline: Timeline, fps: float, *, keep_original: bool
) -> list[AudioFromFile | SplicedAudio]:
    tracks: list[AudioFromFile | SplicedAudio] = []
    if timeline.rest_frames > 0:
        tracks.append(dub_then_rest(audio, source, timeline, fps))
    else:
        tracks.append(AudioFromFile(audio))
    if keep_original:
        if source.audio is None:
            log.warning("%s has no audio: no original track to keep", source.path)
        else:
            tracks.append(AudioFromFile(source.path, duration=timeline.total_frames / fps))
    return tracks
