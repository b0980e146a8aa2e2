"""The output's audio tracks: the new speech (stream-copied when the container takes its codec), followed by the
source's own audio when the rest of a longer video is kept, and optionally the source's audio as a second track."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dubber.log import get_logger
from dubber.media.audio import AudioClip, decode_audio
from dubber.media.audio_feed import AudioFromFile
from dubber.media.probe import MediaInfo
from dubber.pipeline.timeline import Timeline

log = get_logger("pipeline")

_RATE = 48_000


def _fit(samples: np.ndarray, count: int) -> np.ndarray:
    if samples.shape[1] >= count:
        return samples[:, :count]
    return np.pad(samples, ((0, 0), (0, count - samples.shape[1])))


def _channels(samples: np.ndarray, channels: int) -> np.ndarray:
    if samples.shape[0] == channels:
        return samples
    mono = samples.mean(axis=0, keepdims=True)
    return np.repeat(mono, channels, axis=0)


def dub_then_rest(audio: Path, source: MediaInfo, timeline: Timeline, fps: float) -> AudioClip:
    """The new speech over the dubbed frames, then the source's own audio over the frames kept after it."""
    dub_end = timeline.dub_frames / fps
    end = timeline.total_frames / fps
    speech = decode_audio(audio, sample_rate=_RATE, mono=False)
    if source.audio is not None:
        original = decode_audio(source.path, sample_rate=_RATE, mono=False).samples
    else:
        original = np.zeros((1, 0), np.float32)
    channels = max(speech.channels, original.shape[0])
    first = _fit(_channels(speech.samples, channels), int(round(dub_end * _RATE)))
    rest = _channels(original, channels)[:, int(round(dub_end * _RATE)) : int(round(end * _RATE))]
    rest = _fit(rest, int(round(end * _RATE)) - first.shape[1])
    return AudioClip(np.ascontiguousarray(np.concatenate([first, rest], axis=1), np.float32), _RATE)


def output_audio(
    audio: Path, source: MediaInfo, timeline: Timeline, fps: float, *, keep_original: bool
) -> list[AudioClip | AudioFromFile]:
    tracks: list[AudioClip | AudioFromFile] = []
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
