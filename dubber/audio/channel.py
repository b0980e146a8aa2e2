"""Recording-channel augmentation of a waveform: another microphone's tone, a room's reverberation, background noise.

The shared train audio is mostly one studio recording (GRID); the speakers a dub meets were recorded in rooms, on
lapel and camera microphones, over noise. A completer reading a speech encoder's features could tie mouth shapes to
the studio's channel; its voice variants (``dubber.data.speech_cache``) can also hear the clip through a random other
channel. Every draw is fixed by a seed, so a cache filled in two sittings holds the same variants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

EQ_HZ = (100.0, 250.0, 600.0, 1500.0, 3500.0, 8000.0)  # control points of the tone curve, log-spaced over speech
EQ_DB = 6.0  # each control point's gain is uniform in +-this
RT60_RANGE = (0.15, 0.6)  # seconds for the reverberation to fall by 60 dB: a small office to a hall
REVERB_CHANCE = 0.5
WET_RANGE = (0.2, 0.7)  # reverberant energy against the direct sound
NOISE_CHANCE = 0.7
SNR_RANGE_DB = (10.0, 30.0)


@dataclass(frozen=True)
class Channel:
    """One drawn recording channel."""

    eq_db: tuple[float, ...]  # gain at each of EQ_HZ
    rt60: float  # 0: no room
    wet: float
    snr_db: float | None  # None: no noise
    seed: int  # the draws of the room's impulse response and of the noise


def random_channel(rng: np.random.Generator) -> Channel:
    """A channel drawn from the ranges above: every recording gets a tone curve, some a room, most some noise."""
    eq = tuple(float(g) for g in rng.uniform(-EQ_DB, EQ_DB, len(EQ_HZ)))
    room = rng.random() < REVERB_CHANCE
    rt60 = float(rng.uniform(*RT60_RANGE)) if room else 0.0
    wet = float(rng.uniform(*WET_RANGE)) if room else 0.0
    snr = float(rng.uniform(*SNR_RANGE_DB)) if rng.random() < NOISE_CHANCE else None
    return Channel(eq, rt60, wet, snr, int(rng.integers(0, 2**31 - 1)))


def _equalise(x: np.ndarray, eq_db: tuple[float, ...], sample_rate: int) -> np.ndarray:
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    # Interpolated over log frequency, held flat below the first and above the last control point.
    gain_db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(EQ_HZ), eq_db)
    return np.fft.irfft(spectrum * 10.0 ** (gain_db / 20.0), len(x))


def room_response(rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: Gaussian noise under an exponential decay of 60 dB over ``rt60`` seconds,
    unit energy, its first 5 ms left out (the direct sound is added apart)."""
    n = int(1.2 * rt60 * sample_rate)
    t = np.arange(n) / sample_rate
    ir = rng.standard_normal(n) * 10.0 ** (-3.0 * t / rt60)
    ir[: int(0.005 * sample_rate)] = 0.0
    return ir / max(np.sqrt(np.sum(ir**2)), 1e-12)


def _pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1.0))  # power falling as 1/f, as room noise does
    return np.fft.irfft(spectrum, n)


def apply_channel(samples: np.ndarray, channel: Channel, sample_rate: int = 16_000) -> np.ndarray:
    """``samples`` (mono) heard through ``channel``, at the input's RMS level (float32, same length)."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) == 0:
        return x.astype(np.float32)
    rms = np.sqrt(np.mean(x**2))
    rng = np.random.default_rng(channel.seed)
    y = _equalise(x, channel.eq_db, sample_rate)
    if channel.rt60 > 0:
        tail = fftconvolve(y, room_response(channel.rt60, sample_rate, rng))[: len(y)]
        y = y + np.sqrt(channel.wet) * tail * np.sqrt(np.mean(y**2) / max(np.mean(tail**2), 1e-20))
    if channel.snr_db is not None and rms > 0:
        noise = _pink_noise(len(y), rng)
        level = np.sqrt(np.mean(y**2)) / 10.0 ** (channel.snr_db / 20.0)
        y = y + noise * level / max(np.sqrt(np.mean(noise**2)), 1e-20)
    out_rms = np.sqrt(np.mean(y**2))
    if out_rms > 0 and rms > 0:
        y *= rms / out_rms
    return y.astype(np.float32)
