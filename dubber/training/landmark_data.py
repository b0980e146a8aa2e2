"""Training and evaluation samples for the landmark completer, built from a prepared cache.

A sample is a window of T consecutive usable frames of one clip: their mel windows, their pose points and the
target lip/jaw points, plus R reference landmark sets from the same clip chosen spread over its mouth-opening range
(away from the window, so the target is never among them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from dubber.audio.augment import random_warp
from dubber.audio.features import AudioFeatures
from dubber.audio.speech import MelAndSpeechFeatures, SpeechFeatures, track_mean
from dubber.audio.windows import frame_windows, stretched_windows
from dubber.data.cache import ClipTrack, PrepCache
from dubber.data.speech_cache import read_speech, voice_variant_name
from dubber.errors import InputError
from dubber.face.landmarks import ALL_INDICES, CONTENT_INDICES, POSE_INDICES, mouth_opening
from dubber.models.landmark_completer import MEL_BANDS
from dubber.models.reference_choice import spread_references
from dubber.models.speech_encoder import feature_name

_CONTENT = np.asarray(CONTENT_INDICES)
_POSE = np.asarray(POSE_INDICES)
_ALL = np.asarray(ALL_INDICES)
# Positions of the mouth-opening points inside the content order (jaw, outer lips, inner lips).
OPENING_IN_CONTENT = tuple(CONTENT_INDICES.index(i) for i in (13, 14, 61, 291))


def content_opening(content: np.ndarray) -> np.ndarray:
    """Mouth opening (inner gap / width) from content-ordered points (..., 57, 2)."""
    up, low, right, left = (content[..., i, :] for i in OPENING_IN_CONTENT)
    gap = np.linalg.norm(low - up, axis=-1)
    return gap / np.maximum(np.linalg.norm(left - right, axis=-1), 1e-6)


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
    mel_windows: np.ndarray  # (N, 16, 80) float16 mel windows, or (N, steps, dims) speech-feature windows
    opening: np.ndarray  # (N,) true mouth opening (NaN where unusable)
    inter_ocular: np.ndarray  # (N,) in crop units
    mel: np.ndarray | None = None  # (M, 80) float16, the whole clip's log-mel (for time-stretched windows)
    mel_bands: int = MEL_BANDS  # the windows' first features that are mel bands (the rest: speech features)
    audio_delay: float = 0.0  # seconds the sound was moved back to sync it with the picture
    voices: list[np.ndarray] = field(default_factory=list)  # speech features of the audio in other voices (S, dims)
    voice_index: np.ndarray | None = None  # (N, steps) the step of ``voices`` each window reads

    @property
    def pose(self) -> np.ndarray:
        return self.points[:, : len(_POSE)]

    @property
    def content(self) -> np.ndarray:
        return self.points[:, len(_POSE) :]

    @classmethod
    def from_track(
        cls,
        track: ClipTrack,
        audio_delay: float = 0.0,
        speech: SpeechInput | None = None,
        voices: Sequence[np.ndarray] = (),
    ) -> ClipArrays:
        """``audio_delay``: seconds the clip's sound runs late against its picture; each frame then reads the mel
        that far later, so a training clip with a known offset teaches the mouth in sync. ``speech``: the frames'
        windows are ``speech.steps`` steps of the track's speech features instead of the mel, or with
        ``speech.with_mel`` the mel windows with the speech features appended to each step. ``voices``: with
        speech features alone, the same features of the clip's audio in other voices (voice variants), which
        training windows may read instead."""
        voice_index = None
        if voices and (speech is None or speech.with_mel):
            raise ValueError("voice variants replace speech-feature windows; the completer must read speech alone")
        usable = track.usable.copy()
        points = track.crop_points[:, _ALL].astype(np.float32)
        usable &= np.isfinite(points).all(axis=(1, 2))
        opening = np.where(usable, mouth_opening(track.crop_points), np.nan).astype(np.float32)
        io = np.linalg.norm(track.crop_points[:, 263] - track.crop_points[:, 33], axis=-1).astype(np.float32)
        times = track.times + audio_delay
        if speech is not None and track.speech is None:
            raise ValueError(f"clip {track.record.clip_id} was loaded without its speech features")
        if speech is None:
            windows = frame_windows(track.mel, times)
        elif speech.with_mel:
            windows = MelAndSpeechFeatures(AudioFeatures(track.mel), SpeechFeatures(track.speech)).windows(times)
        else:
            windows = SpeechFeatures(track.speech).windows(times, speech.steps)
            voice_index = SpeechFeatures(track.speech).window_index(times, speech.steps).astype(np.int32)
        return cls(
            clip_id=track.record.clip_id,
            speaker=track.record.speaker,
            source=track.record.source,
            seconds=track.record.seconds,
            times=track.times,
            usable=usable,
            points=_fill_gaps(points, usable),
            mel_windows=windows.astype(np.float16),
            opening=opening,
            inter_ocular=io,
            mel=None if speech is not None and not speech.with_mel else track.mel.astype(np.float16),
            mel_bands=0 if speech is not None and not speech.with_mel else MEL_BANDS,
            audio_delay=float(audio_delay),
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


class SpeechInput(NamedTuple):
    """Which speech features a completer reads: the encoder's name, window steps, whether after mel bands, the
    layer, and their normalisation (``SPEECH_NORMS``)."""

    source: str
    steps: int
    with_mel: bool = False
    layer: int = 0
    norm: str = "none"


def speech_input(config) -> SpeechInput | None:
    """What :func:`load_clips` needs for a completer config reading speech features (None for a mel-only one)."""
    if config.audio_input == "mel":
        return None
    with_mel = config.audio_input == "mel+speech"
    return SpeechInput(config.speech_encoder, config.mel_steps, with_mel, config.speech_layer, config.speech_norm)


def load_clips(
    cache: PrepCache,
    split: str,
    *,
    min_frames: int = 20,
    audio_delays: dict[str, float] | None = None,
    speech: tuple | None = None,
    voices: tuple | None = None,
) -> list[ClipArrays]:
    """Every clip of ``split`` with audio and enough usable frames (``audio_delays``: seconds by clip id).

    ``speech``: a :class:`SpeechInput` (or its fields as a tuple) to read speech-feature windows. ``voices``:
    (warp amount, count[, through other channels]) of the voice variants of those features to read too
    (``add_voice_variants``).
    """
    out = []
    delays = audio_delays or {}
    spec = SpeechInput(*speech) if speech is not None else None
    if voices is not None and spec is None:
        raise ValueError("voice variants are variants of speech features; give the speech input too")
    for rec in cache.records(split, with_audio=True):
        name = feature_name(spec.source, spec.layer) if spec is not None else None
        track = cache.load(rec, name)
        variants = []
        if voices is not None:
            for k in range(voices[1]):
                steps = read_speech(cache.root, rec, voice_variant_name(name, voices[0], k, *voices[2:3]))
                if steps is None:
                    raise InputError(cache.root, f"clip {rec.clip_id} lacks voice variant {k} of its {name} features")
                variants.append(steps.astype(np.float16))
        if spec is not None and spec.norm == "clip":  # each voice's features centred on their own mean, as in a dub
            track.speech = (track.speech - track_mean(track.speech)).astype(track.speech.dtype)  # float16 stays so
            variants = [(v - track_mean(v)).astype(np.float16) for v in variants]
        arrays = ClipArrays.from_track(track, delays.get(rec.clip_id, 0.0), spec, variants)
        if arrays.usable.sum() >= min_frames:
            out.append(arrays)
    return out


def read_audio_delays(report: str | Path, *, min_frames: int = 2, min_gain: float = 0.05) -> dict[str, float]:
    """Clip id -> seconds its sound is late, from a ``tools/sync_offsets.py`` report.

    Only clear offsets count: at least ``min_frames`` frames, and a correlation at that shift at least ``min_gain``
    above the unshifted one; a one-frame or weak best shift is as likely noise as a real offset.
    """
    try:
        rows = json.loads(Path(report).read_text())
        rows = rows["clips"] if isinstance(rows, dict) else rows
        out = {}
        for r in rows:
            plain, best = r.get("corr"), r.get("corr_best")
            if abs(r["offset_frames"]) < min_frames or plain is None or best is None or best - plain < min_gain:
                continue
            out[str(r["clip"])] = float(r["offset_frames"]) / float(r["fps"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(report, f"not a sync offsets report from tools/sync_offsets.py ({exc})") from None
    return out


def reference_indices(
    clip: ClipArrays, count: int, rng: np.random.Generator | None, exclude: slice | None = None
) -> np.ndarray:
    cand = clip.usable.copy()
    if exclude is not None:
        cand[exclude] = False
    idx = np.flatnonzero(cand)
    if len(idx) == 0:
        idx = np.flatnonzero(clip.usable)
    return spread_references(np.nan_to_num(clip.opening, nan=0.0), idx, count, rng)


class WindowSampler:
    """Random training windows, as a pure function of (seed, step, rank): a resumed run draws the same batches."""

    def __init__(
        self,
        clips: list[ClipArrays],
        window: int,
        n_refs: int,
        *,
        exclude_margin: int | None = None,
        pose_swap: float = 0.0,
        freq_warp: float = 0.0,
        time_stretch: float = 0.0,
        audio_dropout: float = 0.0,
    ) -> None:
        self.clips = clips
        self.audio_dropout = audio_dropout
        self.pose_swap = pose_swap
        self.freq_warp = freq_warp
        self.time_stretch = time_stretch
        self.window = window
        self.n_refs = n_refs
        self.margin = window if exclude_margin is None else exclude_margin
        starts: list[tuple[int, int]] = []
        for ci, c in enumerate(clips):
            ok = c.usable.astype(np.int32)
            run = np.convolve(ok, np.ones(window, np.int32), mode="valid")  # usable frames in each window
            starts += [(ci, s) for s in np.flatnonzero(run == window)]
        if not starts:
            raise ValueError("no window of usable frames in the data")
        self.starts = np.asarray(starts, np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, size: int, seed: int, step: int, rank: int = 0, augment: bool = True) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([seed, step, rank])
        picks = self.starts[rng.integers(0, len(self.starts), size)]
        return self.gather(picks, rng if augment else None)

    def gather(self, picks: np.ndarray, rng: np.random.Generator | None) -> dict[str, torch.Tensor]:
        t, r = self.window, self.n_refs
        mel = np.empty((len(picks), t, *self.clips[0].mel_windows.shape[1:]), np.float32)
        pose = np.empty((len(picks), t, len(_POSE), 2), np.float32)
        target = np.empty((len(picks), t, len(_CONTENT), 2), np.float32)
        refs = np.empty((len(picks), r, len(_ALL), 2), np.float32)
        for b, (ci, s) in enumerate(picks):
            c = self.clips[ci]
            mel[b] = c.mel_windows[s : s + t]
            ps = s
            if rng is not None and self.pose_swap and rng.random() < self.pose_swap and len(c.pose) > t:
                # Pose from another moment of the clip: as in dubbing, where the video's head motion does not go
                # with the new audio, the mouth must come from the audio and not from cues in the upper face.
                ps = int(rng.integers(0, len(c.pose) - t + 1))
            pose[b] = c.pose[ps : ps + t]
            target[b] = c.content[s : s + t]
            span = t
            if rng is not None and self.time_stretch > 0:  # drawn only when on: runs without it are unchanged
                rate = float(np.exp(rng.uniform(-np.log1p(self.time_stretch), np.log1p(self.time_stretch))))
                span = self._stretch(c, s, ps, rate, mel[b], pose[b], target[b])
            exclude = slice(max(0, s - self.margin), s + span + self.margin)
            refs[b] = c.points[reference_indices(c, r, rng, exclude)]
        if rng is not None:
            bands = self.clips[0].mel_bands
            mel, pose, target, refs = _augment(rng, mel, pose, target, refs, mel_bands=bands)
            if self.freq_warp > 0 and bands:  # drawn last, so runs without it draw exactly the batches they did before
                mel[..., :bands] = random_warp(mel[..., :bands], rng, self.freq_warp)
            if any(self.clips[ci].voices for ci, _ in picks):  # likewise
                self._other_voices(picks, rng, mel)
            if self.audio_dropout > 0:  # after everything else, for the same reason
                mel = _drop_audio(rng, mel, self.audio_dropout, mel_bands=bands)
        return {k: torch.from_numpy(v) for k, v in (("mel", mel), ("pose", pose), ("target", target), ("refs", refs))}

    def _other_voices(self, picks: np.ndarray, rng: np.random.Generator, windows: np.ndarray) -> None:
        """Each window of a clip with voice variants hears, drawn uniformly, its own voice or one of the variants."""
        for b, (ci, s) in enumerate(picks):
            c = self.clips[ci]
            voice = int(rng.integers(0, len(c.voices) + 1)) if c.voices else 0  # 0: the clip's own voice
            if voice:
                windows[b] = c.voices[voice - 1][c.voice_index[s : s + self.window]]

    def _stretch(self, c: ClipArrays, s: int, ps: int, rate: float, mel, pose, target) -> int:
        """Resample one window in place as if spoken ``rate`` times as fast; returns the source frames it spans.

        Frames are read at fractional positions ``s + k * rate`` (points interpolated linearly) and the mel around
        each at the same rate. A window whose stretched span leaves the clip or its usable frames stays as it was.
        """
        t = self.window
        pos = s + np.arange(t) * rate
        last = int(np.ceil(pos[-1]))
        if c.mel is None or last >= len(c.usable) or not c.usable[s : last + 1].all():
            return t
        target[:] = _interpolate(c.content, pos)
        mel[:] = stretched_windows(c.mel, _interpolate(c.times, pos) + c.audio_delay, rate)
        pose[:] = _interpolate(c.pose, np.clip(ps + np.arange(t) * rate, 0, len(c.pose) - 1))
        return last - s + 1


def _interpolate(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``values`` (N, ...) read at fractional indices ``pos`` (within 0..N-1), linearly between neighbours."""
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(values) - 1)
    frac = (pos - lo).reshape(-1, *([1] * (values.ndim - 1)))
    return values[lo] * (1 - frac) + values[hi] * frac


def _drop_audio(rng: np.random.Generator, audio: np.ndarray, p: float, mel_bands: int) -> np.ndarray:
    """Input dropout on the audio windows: each value is dropped with probability ``p`` (a mel bin to silence; a
    speech feature to 0, the rest scaled by 1 / (1 - p)), so no few features can carry a speaker's articulation."""
    keep = rng.random(audio.shape) >= p
    out = np.where(keep, audio / np.float32(1.0 - p), np.float32(0.0))
    out[..., :mel_bands] = np.where(keep[..., :mel_bands], audio[..., :mel_bands], np.float32(-4.0))
    return out.astype(np.float32)


def _augment(rng: np.random.Generator, mel, pose, target, refs, mel_bands: int = 80):
    """Small shared similarity jitter of every point set (alignment noise) and loudness / band changes of the mel.

    Speech-encoder features are left as they are: loudness and band changes act on the sound before the encoder,
    and the encoder was trained to ignore them.
    """
    if mel_bands and mel.shape[-1] > mel_bands:  # mel bands then speech features: only the bands are changed
        bands, pose, target, refs = _augment(rng, mel[..., :mel_bands], pose, target, refs, mel_bands)
        return np.concatenate([bands, mel[..., mel_bands:]], axis=-1), pose, target, refs
    b = len(mel)
    scale = 1.0 + rng.normal(0, 0.02, (b, 1, 1, 1)).astype(np.float32)
    shift = rng.normal(0, 0.006, (b, 1, 1, 2)).astype(np.float32)
    ang = rng.normal(0, 0.02, b).astype(np.float32)
    rot = np.stack([np.cos(ang), -np.sin(ang), np.sin(ang), np.cos(ang)], 1).reshape(b, 1, 2, 2)

    def move(p):
        return ((p - 0.5) @ rot.transpose(0, 1, 3, 2)) * scale + 0.5 + shift

    if not mel_bands:
        return mel, move(pose), move(target), move(refs)
    # Loudness (log-mel units: about +-7 dB) and a random smooth equaliser curve: other microphones and rooms.
    gain = rng.normal(0, 0.3, (b, 1, 1, 1)).astype(np.float32)
    x = np.linspace(-1.0, 1.0, 80, dtype=np.float32)
    tilt, bend, phase = rng.normal(0, 0.35, (b, 1)), rng.normal(0, 0.25, (b, 1)), rng.uniform(0, np.pi, (b, 1))
    eq = (tilt * x + bend * np.cos(np.pi * x + phase)).astype(np.float32)[:, None, None, :]
    mel = np.clip(mel + (gain + eq) * (mel > -3.99), -4.0, 4.0)
    band = rng.integers(0, 70, b)
    for i in np.flatnonzero(rng.random(b) < 0.3):  # SpecAugment-style band mask
        mel[i, :, :, band[i] : band[i] + rng.integers(2, 10)] = -4.0
    return mel.astype(np.float32), move(pose), move(target), move(refs)
