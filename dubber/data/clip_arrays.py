"""A prepared clip's arrays in the shapes the landmark completer reads: per-frame audio windows, the 131 model points
(pose then lips and jaw), the mouth opening; and the reference frames a completer is given for a clip.

Training, evaluation and the probes of the landmark model all start here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from dubber.audio.features import AudioFeatures
from dubber.audio.speech import MelAndSpeechFeatures, SpeechFeatures
from dubber.audio.windows import frame_windows
from dubber.data.cache import ClipTrack, PrepCache
from dubber.data.speech_cache import read_speech, voice_variant_name
from dubber.errors import InputError
from dubber.face.landmarks import ALL_INDICES, CONTENT_INDICES, N_POSE, mouth_opening
from dubber.models.landmark_completer import MEL_BANDS
from dubber.models.reference_choice import spread_references
from dubber.models.speech_encoder import feature_name

_ALL = np.asarray(ALL_INDICES)


def content_opening(content: np.ndarray) -> np.ndarray:
    """Mouth opening of content-ordered points (..., 57, 2): ``mouth_opening`` on the jaw-and-lips points."""
    return mouth_opening(content, CONTENT_INDICES)


class SpeechInput(NamedTuple):
    """Which speech features a completer reads: the encoder's name, window steps, whether after mel bands, the
    layer."""

    source: str
    steps: int
    with_mel: bool = False
    layer: int = 0


def speech_input(config) -> SpeechInput | None:
    """What :func:`load_clips` needs for a completer config reading speech features (None for a mel-only one)."""
    if config.audio_input == "mel":
        return None
    with_mel = config.audio_input == "mel+speech"
    return SpeechInput(config.speech_encoder, config.audio_steps, with_mel, config.speech_layer)


@dataclass
class ClipArrays:
    """One clip's arrays in the shapes the model reads (float32, unit crop coordinates)."""

    clip_id: str
    speaker: str
    source: str
    seconds: float
    times: np.ndarray
    usable: np.ndarray  # (N,) bool
    points: np.ndarray  # (N, 131, 2), pose first then content
    audio_windows: np.ndarray  # (N, 16, 80) float16 mel windows, or (N, steps, dims) speech-feature windows
    opening: np.ndarray  # (N,) true mouth opening (NaN where unusable)
    inter_ocular: np.ndarray  # (N,) in crop units
    mel_bands: int = MEL_BANDS  # the windows' first features that are mel bands (the rest: speech features)
    voices: list[np.ndarray] = field(default_factory=list)  # speech features of the audio in other voices (S, dims)
    voice_index: np.ndarray | None = None  # (N, steps) the step of ``voices`` each window reads

    @property
    def pose(self) -> np.ndarray:
        return self.points[:, :N_POSE]

    @property
    def content(self) -> np.ndarray:
        return self.points[:, N_POSE:]

    @classmethod
    def from_track(
        cls, track: ClipTrack, speech: SpeechInput | None = None, voices: Sequence[np.ndarray] = ()
    ) -> ClipArrays:
        """``speech``: the frames' windows are ``speech.steps`` steps of the track's speech features instead of the
        mel, or with ``speech.with_mel`` the mel windows with the speech features appended to each step.
        ``voices``: with speech features alone, the same features of the clip's audio in other voices (voice
        variants), which training windows may read instead."""
        voice_index = None
        if voices and (speech is None or speech.with_mel):
            raise ValueError("voice variants replace speech-feature windows; the completer must read speech alone")
        usable = track.usable.copy()
        points = track.crop_points[:, _ALL].astype(np.float32)
        usable &= np.isfinite(points).all(axis=(1, 2))
        opening = np.where(usable, mouth_opening(track.crop_points), np.nan).astype(np.float32)
        io = np.linalg.norm(track.crop_points[:, 263] - track.crop_points[:, 33], axis=-1).astype(np.float32)
        if speech is not None and track.speech is None:
            raise ValueError(f"clip {track.record.clip_id} was loaded without its speech features")
        if speech is None:
            windows = frame_windows(track.mel, track.times)
        elif speech.with_mel:
            windows = MelAndSpeechFeatures(AudioFeatures(track.mel), SpeechFeatures(track.speech)).windows(track.times)
        else:
            windows = SpeechFeatures(track.speech).windows(track.times, speech.steps)
            voice_index = SpeechFeatures(track.speech).window_index(track.times, speech.steps).astype(np.int32)
        return cls(
            clip_id=track.record.clip_id,
            speaker=track.record.speaker,
            source=track.record.source,
            seconds=track.record.seconds,
            times=track.times,
            usable=usable,
            points=_fill_gaps(points, usable),
            audio_windows=windows.astype(np.float16),
            opening=opening,
            inter_ocular=io,
            mel_bands=0 if speech is not None and not speech.with_mel else MEL_BANDS,
            voices=list(voices),
            voice_index=voice_index if voices else None,
        )


def _fill_gaps(points: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Unusable frames take the nearest usable frame's points, so windows over short gaps stay well defined."""
    good = np.flatnonzero(usable)
    if len(good) == 0 or len(good) == len(usable):
        return points
    idx = np.arange(len(usable))
    nearest = good[np.clip(np.searchsorted(good, idx), 0, len(good) - 1)]
    before = good[np.clip(np.searchsorted(good, idx) - 1, 0, len(good) - 1)]
    nearest = np.where(np.abs(before - idx) < np.abs(nearest - idx), before, nearest)
    return points[nearest]


def load_clips(
    cache: PrepCache,
    split: str,
    *,
    min_frames: int = 20,
    speech: SpeechInput | None = None,
    voices: tuple[float, int] | None = None,
) -> list[ClipArrays]:
    """Every clip of ``split`` with audio and at least ``min_frames`` usable frames.

    ``speech``: read speech-feature windows (:func:`speech_input`). ``voices``: (warp amount, count) of the voice
    variants of those features to read too (``add_voice_variants``).
    """
    if voices is not None and speech is None:
        raise ValueError("voice variants are variants of speech features; give the speech input too")
    out = []
    for rec in cache.records(split, with_audio=True):
        name = feature_name(speech.source, speech.layer) if speech is not None else None
        track = cache.load(rec, name)
        variants = []
        if voices is not None:
            for k in range(voices[1]):
                steps = read_speech(cache.root, rec, voice_variant_name(name, voices[0], k))
                if steps is None:
                    raise InputError(cache.root, f"clip {rec.clip_id} lacks voice variant {k} of its {name} features")
                variants.append(steps.astype(np.float16))
        arrays = ClipArrays.from_track(track, speech, variants)
        if arrays.usable.sum() >= min_frames:
            out.append(arrays)
    return out


def reference_indices(
    clip: ClipArrays, count: int, rng: np.random.Generator | None, exclude: slice | None = None
) -> np.ndarray:
    """``count`` frames of ``clip`` spread over its mouth openings (IP_LAP), none inside ``exclude`` (the frames a
    training window predicts); random among equals with ``rng``, fixed without."""
    cand = clip.usable.copy()
    if exclude is not None:
        cand[exclude] = False
    idx = np.flatnonzero(cand)
    if len(idx) == 0:
        idx = np.flatnonzero(clip.usable)
    return spread_references(np.nan_to_num(clip.opening, nan=0.0), idx, count, rng)
