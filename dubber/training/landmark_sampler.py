"""Training windows for the landmark completer (``dubber.data.clip_arrays`` holds the clips).

A sample is a window of T consecutive usable frames of one clip: their audio windows, their pose points and the
target lip/jaw points, plus R reference landmark sets from the same clip chosen spread over its mouth-opening range
(away from the window, so the target is never among them). Batches are a pure function of (seed, step, rank): a
resumed run draws what it would have drawn.
"""

from __future__ import annotations

import numpy as np
import torch

from dubber.audio.augment import random_warp
from dubber.data.clip_arrays import ClipArrays, reference_indices
from dubber.face.landmarks import N_CONTENT, N_POINTS, N_POSE


class WindowSampler:
    """Random training windows: uniformly over the windows, or with ``balance`` speakers in proportion to their
    frame count ** ``balance`` (0: every speaker alike, 1: by frames)."""

    def __init__(
        self,
        clips: list[ClipArrays],
        window: int,
        n_refs: int,
        *,
        balance: float | None = None,
        exclude_margin: int | None = None,
        pose_swap: float = 0.0,
        freq_warp: float = 0.0,
    ) -> None:
        self.clips = clips
        self.pose_swap = pose_swap
        self.freq_warp = freq_warp
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
        speakers = np.array([clips[ci].speaker for ci in self.starts[:, 0]])
        names, inverse, counts = np.unique(speakers, return_inverse=True, return_counts=True)
        self.speakers = {str(n): int(c) for n, c in zip(names, counts, strict=True)}
        self.p = None
        if balance is not None:
            weight = counts.astype(np.float64) ** balance / counts  # per window
            self.p = weight[inverse] / weight[inverse].sum()

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, size: int, seed: int, step: int, rank: int = 0, augment: bool = True) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([seed, step, rank])
        if self.p is None:
            picks = self.starts[rng.integers(0, len(self.starts), size)]
        else:
            picks = self.starts[rng.choice(len(self.starts), size, p=self.p)]
        return self.gather(picks, rng if augment else None)

    def gather(self, picks: np.ndarray, rng: np.random.Generator | None) -> dict[str, torch.Tensor]:
        t, r = self.window, self.n_refs
        audio = np.empty((len(picks), t, *self.clips[0].audio_windows.shape[1:]), np.float32)
        pose = np.empty((len(picks), t, N_POSE, 2), np.float32)
        target = np.empty((len(picks), t, N_CONTENT, 2), np.float32)
        refs = np.empty((len(picks), r, N_POINTS, 2), np.float32)
        for b, (ci, s) in enumerate(picks):
            c = self.clips[ci]
            audio[b] = c.audio_windows[s : s + t]
            ps = s
            if rng is not None and self.pose_swap and rng.random() < self.pose_swap and len(c.pose) > t:
                # Pose from another moment of the clip: as in dubbing, where the video's head motion does not go
                # with the new audio, the mouth must come from the audio and not from cues in the upper face.
                ps = int(rng.integers(0, len(c.pose) - t + 1))
            pose[b] = c.pose[ps : ps + t]
            target[b] = c.content[s : s + t]
            exclude = slice(max(0, s - self.margin), s + t + self.margin)
            refs[b] = c.points[reference_indices(c, r, rng, exclude)]
        if rng is not None:
            bands = self.clips[0].mel_bands
            audio, pose, target, refs = _augment(rng, audio, pose, target, refs, mel_bands=bands)
            if self.freq_warp > 0 and bands:  # drawn last, so runs without it draw exactly the batches they did before
                audio[..., :bands] = random_warp(audio[..., :bands], rng, self.freq_warp)
            if any(self.clips[ci].voices for ci, _ in picks):  # likewise
                self._other_voices(picks, rng, audio)
        return {
            "audio": torch.from_numpy(audio),
            "pose": torch.from_numpy(pose),
            "target": torch.from_numpy(target),
            "refs": torch.from_numpy(refs),
        }

    def _other_voices(self, picks: np.ndarray, rng: np.random.Generator, windows: np.ndarray) -> None:
        """Each window of a clip with voice variants hears, drawn uniformly, its own voice or one of the variants."""
        for b, (ci, s) in enumerate(picks):
            c = self.clips[ci]
            voice = int(rng.integers(0, len(c.voices) + 1)) if c.voices else 0  # 0: the clip's own voice
            if voice:
                windows[b] = c.voices[voice - 1][c.voice_index[s : s + self.window]]


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
