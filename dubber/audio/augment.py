"""Speaker-independence augmentation of log-mel features: vocal-tract-length perturbation (VTLP).

Voices differ most in where their formants sit: a shorter vocal tract scales every formant up in frequency. Warping a
training clip's frequency axis by a factor near 1 makes one speaker sound like many, so a model that learned from few
voices (the shared data is mostly one GRID speaker) stops tying mouth shapes to one voice's formant positions.
"""

from __future__ import annotations

import numpy as np

from dubber.audio.mel import MelConfig, hz_to_mel, mel_to_hz


def band_centres(config: MelConfig = MelConfig()) -> np.ndarray:
    """(n_mels,) centre frequency in Hz of each mel band."""
    edges = np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.fmax), config.n_mels + 2)
    return mel_to_hz(edges[1:-1])


def warp_frequencies(mel: np.ndarray, factors: np.ndarray, config: MelConfig = MelConfig()) -> np.ndarray:
    """Scale the frequency axis of log-mel windows: (B, ..., n_mels) with one factor per item (B,).

    A factor above 1 moves energy to higher bands (a formant at f Hz moves to factor * f), as if a shorter vocal tract
    had spoken. Each output band reads the input at its centre frequency / factor, interpolated linearly between
    bands; beyond the covered range the edge band is repeated.
    """
    mel = np.asarray(mel, np.float32)
    factors = np.asarray(factors, np.float64).reshape(-1)
    if len(factors) != len(mel):
        raise ValueError(f"{len(factors)} warp factors for {len(mel)} items")
    centres = band_centres(config)
    bands = np.arange(config.n_mels, dtype=np.float64)
    out = np.empty_like(mel)
    for b, factor in enumerate(factors):
        src = np.interp(centres / factor, centres, bands)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, config.n_mels - 1)
        frac = (src - lo).astype(np.float32)
        out[b] = mel[b][..., lo] * (1.0 - frac) + mel[b][..., hi] * frac
    return out


def random_warp(mel: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Warp each item of ``mel`` (B, ..., n_mels) by its own factor, log-uniform in [1 / (1 + amount), 1 + amount]."""
    span = np.log1p(amount)
    return warp_frequencies(mel, np.exp(rng.uniform(-span, span, len(mel))))
