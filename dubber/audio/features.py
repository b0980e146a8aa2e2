"""Audio file -> mel features, the one entry point prep, training and inference share."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dubber.audio.mel import MelConfig, log_mel
from dubber.audio.rows import Rows
from dubber.audio.windows import WINDOW_STEPS, frame_windows
from dubber.media.audio import AudioClip, decode_audio


@dataclass
class AudioFeatures:
    """A clip's log-mel, (steps, n_mels) float32, at ``config.steps_per_second`` (in memory, or on disk for a dub)."""

    mel: Rows
    config: MelConfig = field(default_factory=MelConfig)

    @property
    def duration(self) -> float:
        return max(0, len(self.mel) - 1) / self.config.steps_per_second

    def windows(self, times: np.ndarray, steps: int = WINDOW_STEPS) -> np.ndarray:
        return frame_windows(self.mel, times, self.config, steps)

    @classmethod
    def silence(cls, seconds: float, config: MelConfig | None = None) -> AudioFeatures:
        config = config or MelConfig()
        n = 1 + int(round(seconds * config.steps_per_second))
        return cls(np.full((n, config.n_mels), config.silence, dtype=np.float32), config)


def audio_features(source: str | Path | AudioClip, config: MelConfig | None = None) -> AudioFeatures:
    """The log-mel of an audio file (any format PyAV reads) or of an already decoded clip."""
    config = config or MelConfig()
    if isinstance(source, AudioClip):
        clip = source
        if clip.sample_rate != config.sample_rate:
            raise ValueError(f"audio at {clip.sample_rate} Hz; the features need {config.sample_rate} Hz")
    else:
        clip = decode_audio(source, sample_rate=config.sample_rate, mono=True)
    return AudioFeatures(log_mel(clip.mono, config), config)
