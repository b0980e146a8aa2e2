"""Speech-encoder features: Whisper's log-mel, the encoder run over 30 s chunks, and per-frame windows of the result.

Whisper hears 30 s at a time. Audio up to 30 s is one chunk, padded with silence as Whisper pads it; longer audio is
read in 30 s chunks 20 s apart and every output step is taken from the chunk where it sits furthest from an edge, so
features near a cut between chunks never lack context. Steps are 20 ms apart; step ``k`` is centred at ``k / 50`` s.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from dubber.audio.augment import warp_frequencies
from dubber.audio.features import AudioFeatures
from dubber.audio.mel import MelConfig, mel_filterbank
from dubber.audio.rows import Rows, take_rows
from dubber.audio.windows import SPEECH_WINDOW_STEPS, WINDOW_STEPS, window_starts
from dubber.models.speech_encoder import SpeechEncoder

SAMPLE_RATE = 16_000
STEPS_PER_SECOND = 50.0
_HOP = 160
_N_FFT = 400
_CHUNK_SECONDS = 30
_STRIDE_SECONDS = 20
_SAMPLES_PER_STEP = SAMPLE_RATE // int(STEPS_PER_SECOND)  # 320


@lru_cache(maxsize=1)
def _whisper_filters() -> np.ndarray:
    # Whisper's filters are librosa's Slaney mel over 0-8 kHz, which MelConfig's filterbank computes too.
    return mel_filterbank(_whisper_mel_config())


@lru_cache(maxsize=1)
def _whisper_mel_config() -> MelConfig:
    return MelConfig(n_fft=_N_FFT, hop_length=_HOP, win_length=_N_FFT, fmin=0.0, fmax=8000.0)


def whisper_log_mel(samples: np.ndarray, n_frames: int = 3000, *, warp: float = 1.0) -> np.ndarray:
    """(80, n_frames) float32 log-mel of 16 kHz mono ``samples`` the way Whisper computes it: zero-padded to
    ``n_frames`` hops, reflect-padded power STFT (n_fft 400, hop 160), log10, floored 8 below the peak, scaled.

    ``warp`` other than 1 scales the frequency axis first (VTLP, ``warp_frequencies``): training audio in another
    voice, so a completer reading the encoder's features does not learn one speaker's formants."""
    x = np.asarray(samples, dtype=np.float64)[: n_frames * _HOP]
    x = np.pad(x, (0, n_frames * _HOP - len(x)))
    padded = np.pad(x, (_N_FFT // 2, _N_FFT // 2), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP][:n_frames]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(_N_FFT) / _N_FFT)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    log = np.log10(np.maximum(power @ _whisper_filters().T, 1e-10))
    if warp != 1.0:
        log = warp_frequencies(log[None], np.array([warp]), _whisper_mel_config())[0].astype(np.float64)
    log = np.maximum(log, log.max() - 8.0)
    return np.ascontiguousarray(((log + 4.0) / 4.0).T, dtype=np.float32)


@dataclass
class SpeechFeatures:
    """A clip's speech-encoder features, (steps, dims) float32 at 50 steps per second (in memory, or on disk for a
    dub)."""

    steps: Rows

    @property
    def duration(self) -> float:
        return max(0, len(self.steps) - 1) / STEPS_PER_SECOND

    def windows(self, times: np.ndarray, steps: int = SPEECH_WINDOW_STEPS) -> np.ndarray:
        """(frames, steps, dims) windows centred on each frame's time; outside the audio the edge step repeats
        (the encoder already saw the silence padding there)."""
        return take_rows(self.steps, self.window_index(times, steps))

    def window_index(self, times: np.ndarray, steps: int = SPEECH_WINDOW_STEPS) -> np.ndarray:
        """(frames, steps) the step each window of :meth:`windows` reads."""
        centre = np.floor(np.asarray(times, dtype=np.float64) * STEPS_PER_SECOND + 0.5).astype(np.int64)
        return np.clip(centre[:, None] - steps // 2 + np.arange(steps)[None, :], 0, max(0, len(self.steps) - 1))

    def on_mel_steps(self, times: np.ndarray, steps: int = WINDOW_STEPS, config: MelConfig = MelConfig()) -> np.ndarray:
        """(frames, steps, dims): for every step of each frame's mel window (``frame_windows``), the speech step
        nearest that mel step's time."""
        mel_steps = window_starts(times, config, steps)[:, None] + np.arange(steps)[None, :]
        index = np.floor(mel_steps / config.steps_per_second * STEPS_PER_SECOND + 0.5).astype(np.int64)
        return take_rows(self.steps, np.clip(index, 0, max(0, len(self.steps) - 1)))


class MelAndSpeechFeatures:
    """Mel windows with the speech features at each mel step's time appended: (frames, steps, 80 + dims)."""

    def __init__(self, mel: AudioFeatures, speech: SpeechFeatures) -> None:
        self.mel, self.speech = mel, speech

    @property
    def duration(self) -> float:
        return self.mel.duration

    def windows(self, times: np.ndarray, steps: int = WINDOW_STEPS) -> np.ndarray:
        return np.concatenate([self.mel.windows(times, steps), self.speech.on_mel_steps(times, steps)], axis=-1)


def _chunk_starts(num_samples: int) -> list[int]:
    chunk, stride = _CHUNK_SECONDS * SAMPLE_RATE, _STRIDE_SECONDS * SAMPLE_RATE
    starts = [0]
    while starts[-1] + chunk < num_samples:
        starts.append(starts[-1] + stride)
    return starts


@torch.inference_mode()
def encode_speech(
    samples: np.ndarray, encoder: SpeechEncoder, *, layer: int = 0, batch: int = 4, warp: float = 1.0
) -> SpeechFeatures:
    """Speech features of 16 kHz mono ``samples``: ``1 + len // 320`` steps (one per 20 ms), from the encoder's
    output (``layer`` 0) or from after its block ``layer``; ``warp``: the voice's frequency axis scaled first
    (training augmentation, ``whisper_log_mel``)."""
    n = 1 + len(samples) // _SAMPLES_PER_STEP
    ctx = encoder.config.n_ctx
    mel_frames = 2 * ctx
    starts = _chunk_starts(len(samples))
    device = next(encoder.parameters()).device
    dtype = next(encoder.parameters()).dtype
    out = np.zeros((n, encoder.config.d_model), np.float32)
    edge = (ctx - _STRIDE_SECONDS * int(STEPS_PER_SECOND)) // 2  # steps dropped at each inner chunk edge (250)
    for b in range(0, len(starts), batch):
        group = starts[b : b + batch]
        mels = np.stack([whisper_log_mel(samples[s : s + mel_frames * _HOP], mel_frames, warp=warp) for s in group])
        feats = encoder(torch.from_numpy(mels).to(device=device, dtype=dtype), layer).float().cpu().numpy()
        for i, s in enumerate(group):
            first = s // _SAMPLES_PER_STEP
            lo = 0 if s == 0 else edge
            hi = ctx if s == starts[-1] else ctx - edge
            lo_g, hi_g = first + lo, min(n, first + hi)
            if hi_g > lo_g:
                out[lo_g:hi_g] = feats[i, lo : lo + hi_g - lo_g]
    return SpeechFeatures(out)
