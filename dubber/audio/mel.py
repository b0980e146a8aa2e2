"""The log-mel spectrogram of docs/ARCHITECTURE.md §4: the audio features every model of dubber reads.

16 kHz mono, pre-emphasis 0.97, magnitude STFT (n_fft 800, hop 200, Hann window 800, frames centred on their time
with zero padding), 80 Slaney-scale mel bands over 55-7600 Hz with Slaney area normalisation, amplitude in dB minus a
20 dB reference, floored at -100 dB and mapped linearly onto [-4, 4]. Step ``k`` is centred at ``k * hop / rate``
seconds, i.e. 80 steps per second. This is the Wav2Lip/IP_LAP recipe, written with numpy alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16_000
    n_fft: int = 800
    hop_length: int = 200
    win_length: int = 800
    n_mels: int = 80
    fmin: float = 55.0
    fmax: float = 7600.0
    preemphasis: float = 0.97
    ref_db: float = 20.0
    min_db: float = -100.0
    max_abs: float = 4.0  # output range is [-max_abs, max_abs]

    @property
    def steps_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def silence(self) -> float:
        """The value of a silent bin (and of padding outside the audio)."""
        return -self.max_abs

    def to_dict(self) -> dict:
        return asdict(self)


# Slaney's mel scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-10) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, hz / _F_SP)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), _F_SP * mel)


@lru_cache(maxsize=4)
def mel_filterbank(config: MelConfig = MelConfig()) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, each with unit area over its mel band (Slaney norm)."""
    n_bins = config.n_fft // 2 + 1
    fft_hz = np.linspace(0.0, config.sample_rate / 2.0, n_bins)
    edges = mel_to_hz(np.linspace(hz_to_mel(config.fmin), hz_to_mel(config.fmax), config.n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=4)
def _window(length: int, n_fft: int) -> np.ndarray:
    # Periodic Hann (the STFT convention), centred in n_fft when the window is shorter.
    n = np.arange(length)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)
    pad = (n_fft - length) // 2
    out = np.zeros(n_fft)
    out[pad : pad + length] = w
    out.setflags(write=False)
    return out


def num_mel_steps(num_samples: int, config: MelConfig = MelConfig()) -> int:
    return 1 + num_samples // config.hop_length


def stft_magnitude(samples: np.ndarray, config: MelConfig = MelConfig()) -> np.ndarray:
    """(steps, n_fft // 2 + 1) magnitude STFT of 1-D samples, frames centred with zero padding."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"samples must be 1-D mono, got shape {x.shape}")
    half = config.n_fft // 2
    padded = np.pad(x, (half, half))
    steps = num_mel_steps(len(x), config)
    frames = np.lib.stride_tricks.sliding_window_view(padded, config.n_fft)[:: config.hop_length][:steps]
    return frame_magnitude(frames, config)


def frame_magnitude(frames: np.ndarray, config: MelConfig = MelConfig()) -> np.ndarray:
    """(steps, n_fft // 2 + 1) magnitude spectra of (steps, n_fft) frames under the analysis window."""
    return np.abs(np.fft.rfft(frames * _window(config.win_length, config.n_fft), axis=1))


def log_mel(samples: np.ndarray, config: MelConfig = MelConfig()) -> np.ndarray:
    """(steps, n_mels) float32 normalised log-mel of 1-D samples at ``config.sample_rate``."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) == 0:
        return np.zeros((0, config.n_mels), dtype=np.float32)
    emphasised = np.concatenate([x[:1], x[1:] - config.preemphasis * x[:-1]])
    return scaled_log_mel(stft_magnitude(emphasised, config), config)


def scaled_log_mel(magnitude: np.ndarray, config: MelConfig = MelConfig()) -> np.ndarray:
    """(steps, n_mels) float32: STFT magnitudes (steps, n_fft // 2 + 1) through the mel filters, in dB, scaled."""
    mel = magnitude @ mel_filterbank(config).T
    floor = 10.0 ** (config.min_db / 20.0)
    db = 20.0 * np.log10(np.maximum(floor, mel)) - config.ref_db
    scaled = 2.0 * config.max_abs * (db - config.min_db) / (-config.min_db) - config.max_abs
    return np.clip(scaled, -config.max_abs, config.max_abs).astype(np.float32)
